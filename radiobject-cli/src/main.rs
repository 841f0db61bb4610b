//! The `radiobject` command.

fn main() {
    std::process::exit(radiobject_cli::main());
}
