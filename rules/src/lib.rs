//! noex-rules: the rule engine (see `shared/spec/RULES.md`).
