//! The built-in `aws` flavor, exported as a WIT 0.1 component: what a
//! flavor built before 0.2 looks like to the host. Its logic and its exports
//! are `flavor-aws`'s, linked here with the kit bound to the frozen
//! `wit/v0.1` (this crate turns on the kit's feature `v0_1`).

extern crate flavor_aws;
