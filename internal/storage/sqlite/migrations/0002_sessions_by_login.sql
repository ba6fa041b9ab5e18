-- ListRefreshFamiliesByClaim: the sessions behind a kube-apiserver user
-- name (the /audit page shows them next to what the user did).
CREATE INDEX refresh_families_preferred_username ON refresh_families (preferred_username, created_at DESC);
CREATE INDEX refresh_families_email ON refresh_families (email, created_at DESC);
