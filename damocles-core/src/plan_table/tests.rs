//! The unit tests of `plan_table`.

use super::tables::REBUILD_UPGRADED;
use super::*;

/// The stage label of this state under `plan` (reference §1.6).
/// Each table's steps restate its transitions: every pair of neighbours on a job's
/// path is a row of its table, the path runs from Empty to Finished, and the steps
/// (with an upgraded variant's) name every state of the table once.
#[test]
fn every_path_follows_its_plans_transitions() {
    let tables = [&SEALER, &SNAPUP, &REBUILD, &REBUILD_UPGRADED, &UNSEAL];
    for table in tables {
        let path: Vec<State> = table.path().map(|step| step.state).collect();
        let plan = table.plan;
        assert_eq!(path.first(), Some(&State::Empty), "{plan}");
        assert_eq!(path.last(), Some(&State::Finished), "{plan}");
        for pair in path.windows(2) {
            assert!(
                table
                    .transitions
                    .iter()
                    .any(|row| row.from == pair[0] && row.to == pair[1]),
                "{plan}: no row of its table leads from {} to {}",
                pair[0],
                pair[1]
            );
        }
        for (i, step) in table.steps.iter().enumerate() {
            assert!(
                !table.steps[..i].iter().any(|s| s.state == step.state),
                "{plan}: {} has two steps",
                step.state
            );
        }
    }
    for plan in [Plan::Sealer, Plan::Snapup, Plan::Rebuild, Plan::Unseal] {
        let table = plan.table().expect("a sector plan");
        for row in table.transitions {
            for state in [row.from, row.to] {
                assert!(
                    table.step(state).is_some()
                        || table.upgraded.is_some_and(|up| up.step(state).is_some()),
                    "{plan}: {state} is in its table but has no step"
                );
            }
        }
    }
}

/// Every input a step consumes is made by an earlier step of the same path (or the
/// allocation), so a job run from Empty never lacks one.
#[test]
fn every_consumed_input_is_made_before() {
    for table in [&SEALER, &SNAPUP, &REBUILD, &REBUILD_UPGRADED] {
        let mut made: Vec<Input> = Vec::new();
        for step in table.path() {
            for input in step.consumes {
                assert!(
                    made.contains(input),
                    "{}: the step of {} consumes {input:?}, which no earlier step makes",
                    table.plan,
                    step.state
                );
            }
            made.extend(step.produces.iter().chain(step.rewrites));
        }
    }
}
