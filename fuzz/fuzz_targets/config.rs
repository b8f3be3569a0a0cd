//! The configuration loader: any TOML text gives a configuration or an error naming the
//! field, never a panic.
#![no_main]
use leadscore::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = Config::from_toml("fuzz.toml", text) {
        assert!(!e.field.is_empty());
    }
});
