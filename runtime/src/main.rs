fn main() -> std::process::ExitCode {
    flavorbox::cli::main()
}
