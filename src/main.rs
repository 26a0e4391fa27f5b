//! The `loft` command line.

fn main() {
    println!("loft");
}
