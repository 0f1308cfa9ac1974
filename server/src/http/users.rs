//! `/api/v1` users, API tokens and SSH keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, Auth};
use super::AppState;
use crate::auth::{generate_token, hash_token, Action, Principal};
use crate::directory::{parse_ssh_key, NewSshKey, NewUser, SshKey, User, UserPatch};
use crate::error::Error;
use crate::store::auth::TokenInfo;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, e.g. "laptop" or "ivr".
    pub name: String,
}

/// A new token: the secret is shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Users may act on themselves; admins on anyone.
async fn target_user(s: &AppState, who: &Principal, id: i64) -> Result<User, Error> {
    if id != who.user_id {
        who.require(Action::ManageUsers)?;
    }
    s.store
        .user(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("user {id}")))
}

/// The caller.
#[utoipa::path(get, path = "/api/v1/me", tag = "users",
    responses((status = 200, body = User), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn me(State(s): State<AppState>, Auth(who): Auth) -> ApiResult<Json<User>> {
    Ok(Json(target_user(&s, &who, who.user_id).await?))
}

/// Create a user (admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    who.require(Action::ManageUsers)?;
    let u = req.validate()?;
    if let Some(o) = u.organization_id {
        if s.store.organization(o).await?.is_none() {
            return Err(Error::invalid(
                "organization_id",
                format!("organization {o} does not exist"),
            )
            .into());
        }
    }
    Ok((
        StatusCode::CREATED,
        Json(s.store.insert_user(&u, s.clock.now()).await?),
    ))
}

/// List users (staff see all; used to pick assignees).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<User>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_users(State(s): State<AppState>, Auth(who): Auth) -> ApiResult<Json<Vec<User>>> {
    if !who.role.is_staff() {
        return Err(Error::forbidden("customers may not list users").into());
    }
    Ok(Json(s.store.users(None, None).await?))
}

/// One user (yourself, or anyone if admin).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_user(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<User>> {
    Ok(Json(target_user(&s, &who, id).await?))
}

/// Change a user. Anyone may change their own name, e-mail and mobile;
/// admins also the manager level and `active` (false refuses the user's
/// tokens at once).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserPatch,
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<UserPatch>,
) -> ApiResult<Json<User>> {
    let user = target_user(&s, &who, id).await?;
    if req.needs_admin() {
        who.require(Action::ManageUsers)?;
    }
    if id == who.user_id && req.active == Some(false) {
        return Err(Error::invalid("active", "you cannot deactivate yourself").into());
    }
    let (rec, active) = req.apply(&user)?;
    Ok(Json(s.store.update_user(id, &rec, active).await?))
}

/// Issue an API token for a user (yourself, or anyone if admin).
#[utoipa::path(post, path = "/api/v1/users/{id}/tokens", tag = "users", request_body = NewToken,
    params(("id" = i64, Path, description = "User id")),
    responses((status = 201, body = IssuedToken), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    let user = target_user(&s, &who, id).await?;
    let name = crate::validate::text("name", &req.name, 100)?;
    let token = generate_token();
    let info = s
        .store
        .insert_token(user.id, &name, &hash_token(&token), s.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(IssuedToken { token, info })))
}

/// List a user's tokens (never the secrets).
#[utoipa::path(get, path = "/api/v1/users/{id}/tokens", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = Vec<TokenInfo>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_tokens(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    let user = target_user(&s, &who, id).await?;
    Ok(Json(s.store.tokens(user.id).await?))
}

/// Revoke a token at once.
#[utoipa::path(delete, path = "/api/v1/users/{id}/tokens/{token_id}", tag = "users",
    params(("id" = i64, Path, description = "User id"), ("token_id" = i64, Path, description = "Token id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath((id, token_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let user = target_user(&s, &who, id).await?;
    match s
        .store
        .revoke_tokens(user.id, Some(token_id), None, s.clock.now())
        .await?
    {
        0 => Err(Error::not_found(format!("live token {token_id} of user {id}")).into()),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// Register an SSH public key (for the remote-login relay).
#[utoipa::path(post, path = "/api/v1/users/{id}/ssh-keys", tag = "users", request_body = NewSshKey,
    params(("id" = i64, Path, description = "User id")),
    responses((status = 201, body = SshKey), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_ssh_key(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NewSshKey>,
) -> ApiResult<(StatusCode, Json<SshKey>)> {
    let user = target_user(&s, &who, id).await?;
    if !user.role.is_staff() {
        return Err(Error::forbidden("only staff log in through the remote-login relay").into());
    }
    let key = parse_ssh_key(&req.public_key)?;
    Ok((
        StatusCode::CREATED,
        Json(s.store.insert_ssh_key(user.id, &key, s.clock.now()).await?),
    ))
}

/// A user's SSH keys.
#[utoipa::path(get, path = "/api/v1/users/{id}/ssh-keys", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = Vec<SshKey>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_ssh_keys(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<SshKey>>> {
    let user = target_user(&s, &who, id).await?;
    Ok(Json(s.store.ssh_keys(user.id).await?))
}

/// Remove an SSH key.
#[utoipa::path(delete, path = "/api/v1/users/{id}/ssh-keys/{key_id}", tag = "users",
    params(("id" = i64, Path, description = "User id"), ("key_id" = i64, Path, description = "Key id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_ssh_key(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath((id, key_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let user = target_user(&s, &who, id).await?;
    if s.store.delete_ssh_key(user.id, key_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::not_found(format!("ssh key {key_id} of user {id}")).into())
    }
}

/// A new password for the web console.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// The new password: 10 to 1024 characters, not the user name.
    pub password: String,
    /// The caller's current password. Required to change one's own password
    /// once one is set; an admin setting another user's does not give it.
    pub current_password: Option<String>,
}

/// Set a user's password (argon2id; only the hash is stored). Users set
/// their own, giving the current one; admins set anyone's.
#[utoipa::path(put, path = "/api/v1/users/{id}/password", tag = "users", request_body = NewPassword,
    params(("id" = i64, Path, description = "User id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_password(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NewPassword>,
) -> ApiResult<StatusCode> {
    let user = target_user(&s, &who, id).await?;
    if !user.active {
        return Err(Error::invalid("id", format!("user {id} is deactivated")).into());
    }
    if id == who.user_id {
        if let Some(stored) = s.store.password_hash(id).await? {
            let Some(current) = req.current_password.clone() else {
                return Err(Error::invalid(
                    "current_password",
                    "is required to change your own password",
                )
                .into());
            };
            if !blocking(move || Ok(crate::password::verify(&current, &stored))).await? {
                return Err(Error::forbidden("current_password does not match").into());
            }
        }
    }
    crate::password::check_policy(&req.password, &user.username)?;
    let password = req.password;
    let hash = blocking(move || crate::password::hash(&password)).await?;
    s.store
        .set_password_hash(id, Some(&hash), s.clock.now())
        .await?;
    tracing::info!(user = %user.username, by = %who.username, "password set");
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a CPU-heavy step (argon2: tens of milliseconds) off the async
/// workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("password hashing task: {e}")))?
}
