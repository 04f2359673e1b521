fn main() -> std::process::ExitCode {
    byoc_bridge::cli::main()
}
