fn main() {
    for f in std::env::args().skip(1) {
        let src = std::fs::read_to_string(&f).unwrap();
        match confab_topology::load(&src) {
            Ok((_, r)) => print!("{}", r.render(&f)),
            Err(e) => println!("{f}: {e}"),
        }
    }
}
