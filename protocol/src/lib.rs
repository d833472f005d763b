//! noex-protocol: every wire type of the noex protocol.
