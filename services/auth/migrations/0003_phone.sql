-- An optional phone number per user: where SMS go (the notifications
-- service reads it through ListRecipients). Stored once, normalised to
-- E.164 by the service (validate.h: validate_phone, the one place that
-- spells the rule); the CHECK repeats that rule as the last wall. Not
-- unique: a household may share one.

ALTER TABLE users ADD COLUMN phone text
  CONSTRAINT users_phone_e164 CHECK (phone ~ '^\+[1-9][0-9]{7,14}$');
