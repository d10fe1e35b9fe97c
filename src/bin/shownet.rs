//! The `shownet` program: port of shownet.py (see `convnet::shownet`).

fn main() -> std::process::ExitCode {
    let code = convnet::shownet::main(std::env::args().collect());
    std::process::ExitCode::from(code as u8)
}
