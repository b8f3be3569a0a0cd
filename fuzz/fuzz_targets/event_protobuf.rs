//! Protobuf event decoding: never panics; a valid event re-encodes to a payload that decodes
//! to an equal event.
#![no_main]
use leadscore::event::{decode, decode_protobuf, Limits, PayloadFormat};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = decode(data, None, PayloadFormat::Protobuf, &Limits::default()) {
        let again = ev.to_proto().encode_to_vec();
        let back = decode_protobuf(&again).expect("re-encoded event decodes");
        assert_eq!(back, ev);
    }
});
