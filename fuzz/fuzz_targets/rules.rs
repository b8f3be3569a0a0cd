//! The rules loader: any bytes give rules or an error, never a panic.
#![no_main]
use leadscore::rules::Rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Rules::parse(std::path::Path::new("fuzz.toml"), data);
});
