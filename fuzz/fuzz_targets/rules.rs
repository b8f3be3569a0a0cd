//! Fuzz target `rules`: the property is leadscore::fuzz_checks::rules.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| leadscore::fuzz_checks::rules(data));
