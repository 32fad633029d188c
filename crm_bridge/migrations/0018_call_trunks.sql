-- Which carrier trunk carried each call, and the tries that failed on other trunks before it
-- (a 503, congestion or a SIP timeout before the phone rang: the same call is tried on the next
-- trunk in preference order). Each try: {"trunk", "cause" (Q.850), "sip_code", "at"}.
ALTER TABLE calls ADD COLUMN trunk text;
ALTER TABLE calls ADD COLUMN trunk_attempts jsonb NOT NULL DEFAULT '[]'::jsonb;
