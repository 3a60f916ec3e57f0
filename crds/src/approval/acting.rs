//! Acting as the requester: the permissions through which an approver could have made the
//! change themselves, under the requester's name.
//!
//! "No self-approval" would mean little if the requester's name were only a mask: a person who
//! may impersonate the GitOps ServiceAccount that stamped a change could have made that change
//! and then approve it as themselves. So an approval also does not count when its approver
//! holds, in the Rollout's namespace, any of these permissions for the requester (the
//! controller asks the API server with a SubjectAccessReview per question, see
//! [`questions`]):
//!
//! - `impersonate` on `users` named the requester (any requester);
//! - for a ServiceAccount requester `system:serviceaccount:<ns>:<name>`: `impersonate` on
//!   `serviceaccounts` `<name>` in `<ns>`, and `create` on `serviceaccounts/token` `<name>` in
//!   `<ns>` (minting a token for it).
//!
//! Not checked, and so not excluded: running a pod as the ServiceAccount (`create pods`, or any
//! workload, in its namespace) and reading a long-lived token Secret of it. Both grant acting as
//! the account too, but `create pods` is held by every workload controller and deployer, so
//! checking it would exclude nearly everyone from approving a GitOps change; restrict who may
//! run pods as a deploying ServiceAccount with admission policy instead. Impersonating a group
//! the requester is in is not checked either (the requester's groups are not recorded).
//!
//! The approver is reviewed with the name and the groups recorded on the Approval (both checked
//! at admission) plus `system:authenticated` (and a ServiceAccount's own groups): a permission
//! granted only through a group the approver left off the Approval is not seen.

use std::fmt;

/// A permission through which someone could act as another identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActingPermission {
    /// `impersonate` on `users` named the requester.
    ImpersonateUser,
    /// `impersonate` on the requester's ServiceAccount.
    ImpersonateServiceAccount,
    /// `create` on the requester ServiceAccount's `token` subresource.
    CreateToken,
}

impl fmt::Display for ActingPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActingPermission::ImpersonateUser => "impersonate users",
            ActingPermission::ImpersonateServiceAccount => "impersonate serviceaccounts",
            ActingPermission::CreateToken => "create serviceaccounts/token",
        })
    }
}

/// One access question: may the approver `verb` the core-group `resource` (with
/// `subresource`) named `name`, in `namespace` (cluster-wide when `None`)?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessQuestion {
    /// The permission this question is about.
    pub permission: ActingPermission,
    /// The verb.
    pub verb: &'static str,
    /// The resource (core API group).
    pub resource: &'static str,
    /// The subresource, if any.
    pub subresource: Option<&'static str>,
    /// The object's name.
    pub name: String,
    /// The namespace, for namespaced resources.
    pub namespace: Option<String>,
}

/// The namespace and name of a ServiceAccount user name
/// (`system:serviceaccount:<namespace>:<name>`).
pub fn service_account(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// The groups the API server gives a ServiceAccount user name, besides `system:authenticated`.
pub fn service_account_groups(username: &str) -> Vec<String> {
    match service_account(username) {
        Some((namespace, _)) => vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{namespace}"),
        ],
        None => Vec::new(),
    }
}

/// The questions whose `allowed` answer means an approver could act as `requester`.
pub fn questions(requester: &str) -> Vec<AccessQuestion> {
    let mut questions = vec![AccessQuestion {
        permission: ActingPermission::ImpersonateUser,
        verb: "impersonate",
        resource: "users",
        subresource: None,
        name: requester.to_owned(),
        namespace: None,
    }];
    if let Some((namespace, name)) = service_account(requester) {
        questions.push(AccessQuestion {
            permission: ActingPermission::ImpersonateServiceAccount,
            verb: "impersonate",
            resource: "serviceaccounts",
            subresource: None,
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
        });
        questions.push(AccessQuestion {
            permission: ActingPermission::CreateToken,
            verb: "create",
            resource: "serviceaccounts",
            subresource: Some("token"),
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
        });
    }
    questions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_names_parse_and_others_do_not() {
        assert_eq!(
            service_account("system:serviceaccount:shop:deployer"),
            Some(("shop", "deployer"))
        );
        for name in [
            "alice",
            "system:serviceaccount:shop",
            "system:serviceaccount::x",
            "system:serviceaccount:a:b:c",
        ] {
            assert_eq!(service_account(name), None, "{name}");
        }
        assert_eq!(
            service_account_groups("system:serviceaccount:shop:deployer"),
            ["system:serviceaccounts", "system:serviceaccounts:shop"]
        );
        assert!(service_account_groups("alice").is_empty());
    }

    #[test]
    fn a_user_requester_is_checked_for_impersonation_and_a_service_account_also_for_tokens() {
        let user = questions("alice");
        assert_eq!(user.len(), 1);
        assert_eq!(
            (user[0].verb, user[0].resource, user[0].name.as_str()),
            ("impersonate", "users", "alice")
        );
        let account = questions("system:serviceaccount:shop:deployer");
        let permissions: Vec<_> = account.iter().map(|q| q.permission).collect();
        assert_eq!(
            permissions,
            [
                ActingPermission::ImpersonateUser,
                ActingPermission::ImpersonateServiceAccount,
                ActingPermission::CreateToken
            ]
        );
        assert_eq!(account[2].subresource, Some("token"));
        assert_eq!(account[2].name, "deployer");
        assert_eq!(account[2].namespace.as_deref(), Some("shop"));
        assert_eq!(
            ActingPermission::CreateToken.to_string(),
            "create serviceaccounts/token"
        );
    }
}
