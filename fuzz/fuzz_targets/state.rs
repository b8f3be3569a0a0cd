//! The versioned binary state decoder (what a changelog restore reads): never panics; a state
//! it accepts re-encodes to bytes that decode to an equal state.
#![no_main]
use std::sync::OnceLock;

use leadscore::rules::Rules;
use leadscore::state::LeadState;
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let text = include_bytes!("../../examples/rules.toml");
        Rules::parse(std::path::Path::new("examples/rules.toml"), text).expect("example rules")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(st) = LeadState::decode(rules(), data) {
        let bytes = st.to_bytes(rules());
        let back = LeadState::decode(rules(), &bytes).expect("re-encoded state decodes");
        assert_eq!(back, st);
    }
});
