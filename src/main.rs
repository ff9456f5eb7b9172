//! `pgrehearse`: a thin command-line layer over the `harness` library.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    let ui = cli::ui::Ui::init(args.verbose, args.quiet);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    let code = rt.block_on(cli::dispatch(args, ui));
    // Shut the runtime down before exiting so that backends' Drop (cleanup) runs inside it;
    // bounded, because a blocking task may never end (a first-use download cut short by
    // Ctrl-C, with the network stuck).
    rt.shutdown_timeout(std::time::Duration::from_secs(30));
    std::process::exit(code);
}
