//! Fuzz target `engine_order`: the property is leadscore::fuzz_checks::engine_order.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| leadscore::fuzz_checks::engine_order(data));
