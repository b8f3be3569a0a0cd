//! Fuzz target `event_json`: the property is leadscore::fuzz_checks::event_json.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| leadscore::fuzz_checks::event_json(data));
