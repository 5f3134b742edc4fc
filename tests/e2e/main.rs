//! End-to-end tests: they drive the built `sluice` binary the way a user
//! does, through its command line, and check what it prints and stores.
//!
//! One test binary (this file's modules) keeps link time down.

mod support;

mod ab;
mod cache;
mod check;
mod clients;
mod cluster;
mod containment;
mod contract;
mod dataplane;
mod drift;
mod edge;
mod infra;
mod lineage;
mod ml;
mod monitor;
mod new_build;
mod pipeline_test;
mod polyglot;
mod predict_validation;
mod promotion;
mod quickstart;
mod rollout;
mod s3;
mod sandbox;
mod sdk_example;
mod serve;
mod serving_stats;
mod shadow;
mod spec_errors;
mod store;
mod team;
mod watch;
