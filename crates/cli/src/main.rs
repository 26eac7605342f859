fn main() -> std::process::ExitCode {
    flavorbox::main()
}
