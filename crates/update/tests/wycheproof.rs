//! Wycheproof's Ed25519 vectors through the verifier the updater uses for images and key
//! statements (`image::verify_signature`, strict verification).

use thecal_update::image::verify_signature;
use wycheproof::TestResult;
use wycheproof::eddsa::{TestName, TestSet};

#[test]
fn wycheproof_ed25519_vectors_give_the_expected_result_fwu_003() {
    let set = TestSet::load(TestName::Ed25519).unwrap();
    let (mut applicable, mut valid, mut invalid, mut passed) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for group in &set.test_groups {
        let key: [u8; 32] = group.key.pk[..].try_into().unwrap();
        for t in &group.tests {
            applicable += 1;
            // A signature that is not 64 bytes cannot be carried: the image's ED25519 TLV
            // of another length is malformed, so it counts as refused.
            let accepted = <[u8; 64]>::try_from(&t.sig[..])
                .is_ok_and(|sig| verify_signature(&key, &t.msg, &sig).is_ok());
            let ok = match t.result {
                TestResult::Valid => {
                    valid += 1;
                    accepted
                }
                TestResult::Invalid => {
                    invalid += 1;
                    !accepted
                }
                TestResult::Acceptable => true,
            };
            if ok {
                passed += 1;
            } else {
                failures.push((t.tc_id, t.result, t.comment.clone()));
            }
        }
    }
    println!(
        "Wycheproof Ed25519: {passed}/{applicable} as expected ({valid} valid, {invalid} invalid)"
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(applicable, set.number_of_tests);
    assert_eq!((applicable, valid, invalid), (151, 88, 63));
}
