//! Fuzz target `state`: the property is leadscore::fuzz_checks::state.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| leadscore::fuzz_checks::state(data));
