//! JSON event decoding: never panics; a valid event re-encodes to JSON that decodes to an
//! equal event.
#![no_main]
use leadscore::event::{decode, decode_json, Limits, PayloadFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(ev) = decode(data, None, PayloadFormat::Json, &limits) {
        let again = ev.to_json();
        let back = decode_json(again.as_bytes()).expect("re-encoded event decodes");
        assert_eq!(back, ev);
    }
    let _ = decode(data, Some(b"lead"), PayloadFormat::Auto, &limits);
});
