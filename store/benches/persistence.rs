//! criterion benchmark of insert throughput: in memory vs batched vs sync persistence.

fn main() {}
