-- E-mail (and SMS) deliveries: the same table, state machine and queue as
-- webhooks (ADR 0011), one more kind of target.
--
-- A webhook delivery names its endpoint; a message names its recipient
-- (user_id) and the address it goes to (an e-mail address, a phone
-- number), with the text to send (subject, body). Idempotent by (event,
-- kind, recipient): an event seen twice e-mails a user once.

ALTER TABLE deliveries ADD COLUMN kind text NOT NULL DEFAULT 'webhook';
ALTER TABLE deliveries ADD COLUMN user_id uuid;
ALTER TABLE deliveries ADD COLUMN address text;
ALTER TABLE deliveries ADD COLUMN subject text;
ALTER TABLE deliveries ALTER COLUMN endpoint_id DROP NOT NULL;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_kind
  CHECK (kind IN ('webhook', 'email', 'sms'));
ALTER TABLE deliveries ADD CONSTRAINT deliveries_target CHECK (
  CASE WHEN kind = 'webhook' THEN endpoint_id IS NOT NULL
       ELSE endpoint_id IS NULL AND user_id IS NOT NULL
            AND octet_length(address) BETWEEN 3 AND 320 END);
ALTER TABLE deliveries ADD CONSTRAINT deliveries_subject_length
  CHECK (octet_length(subject) <= 1000);
CREATE UNIQUE INDEX deliveries_per_recipient
  ON deliveries (tenant_id, kind, user_id, event_id) WHERE kind <> 'webhook';
