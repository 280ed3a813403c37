//! The server's `CapabilityStatement` (`GET /fhir/r4/metadata`), the first thing a FHIR
//! client reads: the FHIR version, the format, and for each resource type the
//! interactions, search parameters and operations the router serves. Built from the
//! router's own list of types ([`api::SEARCHABLE`]), so it cannot list a route that is
//! not served.

use chrono::{DateTime, Utc};
use fhir_sdk::r4b::codes::{
    CapabilityStatementKind, FHIRVersion, PublicationStatus, ResourceType, RestfulCapabilityMode,
    SearchParamType,
};
use fhir_sdk::r4b::resources::{
    CapabilityStatement, CapabilityStatementImplementation, CapabilityStatementRest,
    CapabilityStatementRestResource, CapabilityStatementRestResourceInteraction,
    CapabilityStatementRestResourceOperation, CapabilityStatementRestResourceSearchParam,
    CapabilityStatementSoftware,
};

use super::FhirError;
use super::api;

type R<T> = Result<T, FhirError>;

/// The canonical definition of `Patient/$everything` in the FHIR specification.
pub const EVERYTHING: &str = "http://hl7.org/fhir/OperationDefinition/Patient-everything";

fn interaction(code: &str) -> R<Option<CapabilityStatementRestResourceInteraction>> {
    Ok(Some(
        CapabilityStatementRestResourceInteraction::builder()
            .code(code.to_owned())
            .build()?,
    ))
}

fn resource_type(t: &str) -> R<ResourceType> {
    t.parse()
        .map_err(|e| FhirError(format!("resource type {t}: {e}")))
}

/// The CapabilityStatement of this server, dated `now`.
///
/// # Errors
/// A value fhir-sdk's model refuses (a bug).
pub fn statement(now: DateTime<Utc>) -> R<CapabilityStatement> {
    let mut resources = vec![Some(
        CapabilityStatementRestResource::builder()
            .r#type(ResourceType::Patient)
            .documentation(
                "read: physician, nurse, pharmacist, auditor; create (a referral): \
                 physician, nurse; $everything: physician, nurse, pharmacist, auditor \
                 (_audit=true: auditors)"
                    .to_owned(),
            )
            .interaction(vec![interaction("read")?, interaction("create")?])
            .operation(vec![Some(
                CapabilityStatementRestResourceOperation::builder()
                    .name("everything".to_owned())
                    .definition(EVERYTHING.to_owned())
                    .build()?,
            )])
            .build()?,
    )];
    for t in api::SEARCHABLE {
        let who = if t == "AuditEvent" {
            "auditors"
        } else {
            "physician, nurse, pharmacist, auditor"
        };
        resources.push(Some(
            CapabilityStatementRestResource::builder()
                .r#type(resource_type(t)?)
                .documentation(format!("read and search: {who}"))
                .interaction(vec![interaction("read")?, interaction("search-type")?])
                .search_param(vec![Some(
                    CapabilityStatementRestResourceSearchParam::builder()
                        .name("patient".to_owned())
                        .r#type(SearchParamType::Reference)
                        .documentation(
                            "the patient: <id> or Patient/<id> (also as subject)".to_owned(),
                        )
                        .build()?,
                )])
                .build()?,
        ));
    }
    let rest = CapabilityStatementRest::builder()
        .mode(RestfulCapabilityMode::Server)
        .documentation(
            "Sign in with POST /api/v1/session (the session cookie; X-CSRF-Token on POST). \
             Every access is audited."
                .to_owned(),
        )
        .resource(resources)
        .build()?;
    Ok(CapabilityStatement::builder()
        .status(PublicationStatus::Active)
        .date(super::export::moment(now)?)
        .kind(CapabilityStatementKind::Instance)
        .software(
            CapabilityStatementSoftware::builder()
                .name("thecal clinic".to_owned())
                .version(env!("CARGO_PKG_VERSION").to_owned())
                .build()?,
        )
        .implementation(
            CapabilityStatementImplementation::builder()
                .description("thecal clinic: intrathecal pump records as FHIR R4B".to_owned())
                .build()?,
        )
        .fhir_version(FHIRVersion::N430)
        .format(vec![Some("json".to_owned())])
        .rest(vec![Some(rest)])
        .build()?)
}
