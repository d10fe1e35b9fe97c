//! Saving checkpoints as gpumodel.py's `save_state` did, but safely: `kill -9` in the
//! middle of a save never leaves a missing or corrupt newest checkpoint, and pruning
//! under `--max-filesize` never deletes the file just written.

use convnet::checkpoint::value::{to_json, PyObj};
use convnet::checkpoint::{load, save, writer};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

/// A checkpoint-like object of a few MB whose every element says which save wrote it.
fn payload(i: u64) -> Vec<u8> {
    let row: Vec<_> = (0..1000).map(|_| Rc::new(PyObj::Int(i as i64))).collect();
    let rows: Vec<_> = (0..200)
        .map(|_| Rc::new(PyObj::List(RefCell::new(row.clone()))))
        .collect();
    let d = vec![
        (
            Rc::new(PyObj::Bytes(b"batchnum".to_vec())),
            Rc::new(PyObj::Int(i as i64)),
        ),
        (
            Rc::new(PyObj::Bytes(b"rows".to_vec())),
            Rc::new(PyObj::List(RefCell::new(rows))),
        ),
    ];
    writer::dumps(&Rc::new(PyObj::Dict(RefCell::new(d))))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convnet-save-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Run as a child by `kill_9_during_saves`: save 1.1, 1.2, ... into the directory
/// named by CONVNET_SAVE_LOOP until killed.
#[test]
fn save_loop_child() {
    let Some(dir) = std::env::var_os("CONVNET_SAVE_LOOP") else {
        return;
    };
    for i in 1.. {
        save(Path::new(&dir), 1, i, &payload(i), i % 2 == 0, 1 << 20).unwrap();
    }
}

#[test]
fn kill_9_during_saves_leaves_a_whole_newest_checkpoint() {
    let exe = std::env::current_exe().unwrap();
    let mut mid_save = 0;
    for round in 0..8u64 {
        let dir = scratch(&format!("kill-{round}"));
        let mut child = Command::new(&exe)
            .args(["--exact", "save_loop_child", "--nocapture"])
            .env("CONVNET_SAVE_LOOP", &dir)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + 37 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if !dir.exists() {
            continue;
        }
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        mid_save += names.iter().any(|n| n.contains(".tmp-")) as u32;
        if names.iter().all(|n| n.starts_with('.')) {
            continue; // killed before the first save finished: there is nothing to lose
        }
        // The newest checkpoint loads whole, and so does every other one left.
        let newest = load(&dir).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let mut text = String::new();
        to_json(&newest, &mut text);
        assert!(text.contains("\"rows\""), "round {round}");
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                load(&p).unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!("{mid_save} of 8 kills landed in the middle of a save");
}

#[test]
fn pruning_follows_the_original_and_keeps_the_newest() {
    let dir = scratch("prune");
    for b in 1..=3 {
        save(&dir, 1, b, &payload(b), false, 0).unwrap();
    }
    // max 0 MiB: everything before the file just written goes.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["1.3"]);
    // A generous limit keeps everything.
    for b in 4..=5 {
        save(&dir, 1, b, &payload(b), true, 1000).unwrap();
    }
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["1.3", "1.4", "1.5"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
