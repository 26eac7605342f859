//! The hostile test flavor, exported as a WIT 0.1 component: its logic and
//! its exports are `guest-hostile`'s, linked here with the kit bound to the
//! frozen `wit/v0.1` (this crate turns on the kit's feature `v0_1`).

extern crate guest_hostile;
