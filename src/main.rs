fn main() {
    std::process::exit(handoff::app::main());
}
