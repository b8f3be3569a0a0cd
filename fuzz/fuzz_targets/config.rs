//! Fuzz target `config`: the property is leadscore::fuzz_checks::config.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| leadscore::fuzz_checks::config(data));
