//! Fuzz target `event_protobuf`: the property is leadscore::fuzz_checks::event_protobuf.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| leadscore::fuzz_checks::event_protobuf(data));
