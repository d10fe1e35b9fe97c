//! The INI reader on arbitrary bytes: an error or a value, never a crash.
#![no_main]
use convnet::config::{ini::Ini, py};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ini) = Ini::parse(&py::from_bytes(data)) {
        let sections: Vec<String> = ini.sections().map(str::to_string).collect();
        for s in sections {
            for k in ini.raw_options(&s).unwrap().keys() {
                let _ = ini.get(&s, k);
            }
        }
    }
});
