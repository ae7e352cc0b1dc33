use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = voxgate::cli::Cli::parse();
    match voxgate::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voxgate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
