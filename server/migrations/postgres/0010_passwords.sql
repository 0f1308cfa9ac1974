-- Passwords for the web console (argon2id, PHC strings; never the password).
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN password_changed_at BIGINT;
