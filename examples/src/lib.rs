//! Runnable examples of noex; the programs live in `examples/*`.
