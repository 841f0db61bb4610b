//! The `radiobject` command.

fn main() {
    std::process::exit(radiobject_cli::run(std::env::args_os().skip(1)));
}
