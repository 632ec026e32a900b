//! `GET /api/openapi.json`: the management API described from the handlers' own
//! annotations and the types their answers are serialized from (no credentials needed).

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api_types::*;
use super::{account, admin, api_keys, instances, inventory, jobs, usage};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Token Router management API",
        description = "Accounts, keys, usage, the ledger, instances (contributed model servers), async jobs and administration. Authenticate with the `tr_session` cookie (changes made with it need the gateway's own `Origin`) or with `Authorization: Bearer` and a key created with scope `management`. Lists are newest first, `?limit=` (at most 100) and `?before=` the previous page's `next`. Money is a decimal string of USD. Times are RFC 3339, UTC; usage buckets are UTC hours or days, and `from`/`to` are inclusive of whole days (dates) or whole hours (times)."
    ),
    paths(
        account::me,
        account::logout,
        account::redeem,
        account::ledger,
        account::models,
        api_keys::list,
        api_keys::create,
        api_keys::update,
        api_keys::revoke,
        usage::usage,
        usage::requests,
        admin::accounts,
        admin::credit,
        admin::update,
        admin::codes,
        admin::reload,
        instances::list,
        instances::create,
        instances::get,
        instances::update,
        instances::delete,
        instances::rotate_key,
        instances::admin_list,
        instances::admin_update,
        inventory::list_units,
        inventory::add_unit,
        inventory::update_unit,
        inventory::delete_unit,
        inventory::list_software,
        inventory::add_software,
        inventory::update_software,
        inventory::delete_software,
        jobs::get,
        jobs::cancel,
        jobs::list,
    ),
    components(schemas(NewKeyBody, KeyPatchBody, account::RedeemBody, CreditBody, AccountPatchBody, CodesBody, ErrorBody, NewInstanceBody, InstancePatchBody, InstanceModelBody, InstanceAdminPatchBody, ProcessingUnitBody, SoftwareBody)),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("tr_session"))));
        components.add_security_scheme(
            "management_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("sk-tr-…").build()),
        );
        components.add_security_scheme(
            "inference_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("sk-tr-…").build()),
        );
    }
}

/// `GET /api/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
