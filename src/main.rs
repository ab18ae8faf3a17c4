fn main() {
    std::process::exit(chatload::cli::main());
}
