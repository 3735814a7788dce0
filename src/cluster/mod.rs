//! Several `pushdex serve` nodes (`../shared/CLUSTER.md`): etcd holds who
//! owns each index and its commit point ([`etcd`]), an object store holds
//! every byte ([`store`]), and an owned index runs on a storage that makes
//! Synced mean uploaded and published ([`replicated`]).

pub mod etcd;
pub mod replicated;
pub mod store;
