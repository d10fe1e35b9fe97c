//! The checkpoint reader on arbitrary bytes: an error or a value, never a crash, and a
//! value pickles and reads back to itself.
#![no_main]
use convnet::checkpoint::{pickle, value, writer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(obj) = pickle::loads(data) {
        let mut a = String::new();
        value::to_json(&obj, &mut a);
        let again = pickle::loads(&writer::dumps(&obj)).expect("our own pickle reads back");
        let mut b = String::new();
        value::to_json(&again, &mut b);
        assert_eq!(a, b);
    }
});
