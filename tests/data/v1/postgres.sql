--
-- PostgreSQL database dump
--

\restrict hGb0sKnWJ4eRUdxsahMGkh6M5fKMSzgSWMV8Pqdx24GfrL0kocGlyEcjS1bkmRn

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: fixture; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA fixture;


--
-- Name: hookdock_claim_token_seq; Type: SEQUENCE; Schema: fixture; Owner: -
--

CREATE SEQUENCE fixture.hookdock_claim_token_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: hookdock_events; Type: TABLE; Schema: fixture; Owner: -
--

CREATE TABLE fixture.hookdock_events (
    id bigint NOT NULL,
    source text NOT NULL,
    event_id text NOT NULL,
    received_at_ns bigint NOT NULL,
    headers bytea NOT NULL,
    body bytea NOT NULL,
    enqueued_at bigint NOT NULL
)
WITH (autovacuum_vacuum_scale_factor='0.0', autovacuum_vacuum_threshold='10000', autovacuum_vacuum_insert_scale_factor='0.0', autovacuum_vacuum_insert_threshold='50000', autovacuum_analyze_scale_factor='0.02', autovacuum_vacuum_cost_delay='0');


--
-- Name: hookdock_events_id_seq; Type: SEQUENCE; Schema: fixture; Owner: -
--

ALTER TABLE fixture.hookdock_events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME fixture.hookdock_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: hookdock_idempotency; Type: TABLE; Schema: fixture; Owner: -
--

CREATE TABLE fixture.hookdock_idempotency (
    source text NOT NULL,
    event_id text NOT NULL,
    fingerprint bytea NOT NULL,
    token bigint NOT NULL,
    completed boolean DEFAULT false NOT NULL,
    expires_at bigint NOT NULL,
    completed_at bigint,
    result bytea
)
WITH (fillfactor='80', autovacuum_vacuum_scale_factor='0.01', autovacuum_vacuum_threshold='10000', autovacuum_analyze_scale_factor='0.02', autovacuum_vacuum_cost_delay='0');


--
-- Name: hookdock_migrations; Type: TABLE; Schema: fixture; Owner: -
--

CREATE TABLE fixture.hookdock_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: hookdock_queue; Type: TABLE; Schema: fixture; Owner: -
--

CREATE TABLE fixture.hookdock_queue (
    id bigint NOT NULL,
    state smallint DEFAULT 0 NOT NULL,
    available_at bigint NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    lease_token bigint DEFAULT 0 NOT NULL,
    last_error text,
    dead_reason text,
    dead_at bigint,
    CONSTRAINT hookdock_queue_state_check CHECK ((state = ANY (ARRAY[0, 1, 2])))
)
WITH (fillfactor='70', autovacuum_vacuum_scale_factor='0.0', autovacuum_vacuum_threshold='5000', autovacuum_vacuum_insert_scale_factor='0.0', autovacuum_vacuum_insert_threshold='50000', autovacuum_analyze_scale_factor='0.02', autovacuum_vacuum_cost_delay='0');


--
-- Data for Name: hookdock_events; Type: TABLE DATA; Schema: fixture; Owner: -
--

INSERT INTO fixture.hookdock_events OVERRIDING SYSTEM VALUE VALUES (1, 'github', 'waiting-1', 1700000000123000000, '\x782d6769746875622d64656c69766572793a2077616974696e672d310d0a782d6d756c74693a206f6e650d0a782d6d756c74693a2074776f0d0a', '\x7b226e223a317d', 1700000000500);
INSERT INTO fixture.hookdock_events OVERRIDING SYSTEM VALUE VALUES (2, 'github', 'leased-2', 1700000000123000000, '\x782d6769746875622d64656c69766572793a206c65617365642d320d0a782d6d756c74693a206f6e650d0a782d6d756c74693a2074776f0d0a', '\x7b226e223a327d', 1700000000500);
INSERT INTO fixture.hookdock_events OVERRIDING SYSTEM VALUE VALUES (3, 'github', 'dead-3', 1700000000123000000, '\x782d6769746875622d64656c69766572793a20646561642d330d0a782d6d756c74693a206f6e650d0a782d6d756c74693a2074776f0d0a', '\x7b226e223a337d', 1700000000500);
INSERT INTO fixture.hookdock_events OVERRIDING SYSTEM VALUE VALUES (5, 'github', 'retry-5', 1700000000123000000, '\x782d6769746875622d64656c69766572793a2072657472792d350d0a782d6d756c74693a206f6e650d0a782d6d756c74693a2074776f0d0a', '\x7b226e223a357d', 1700000000500);


--
-- Data for Name: hookdock_idempotency; Type: TABLE DATA; Schema: fixture; Owner: -
--

INSERT INTO fixture.hookdock_idempotency VALUES ('github', 'acked-4', '\xf3e0792e105e2bfe88e7b3bab5097b93a59a8c5b239fe3c6f87a8d0f72ab9032', 1, true, 1700259200500, 1700000000500, '\x646f6e65');
INSERT INTO fixture.hookdock_idempotency VALUES ('github', 'leased-2', '\x363379742f80b51bdb9206579af7754911543079b9399cb3fc315fb199f476e8', 2, false, 1700000030500, NULL, NULL);
INSERT INTO fixture.hookdock_idempotency VALUES ('stripe', 'evt_only_claimed', '\x44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', 3, true, 1700259200500, 1700000000500, NULL);


--
-- Data for Name: hookdock_migrations; Type: TABLE DATA; Schema: fixture; Owner: -
--

INSERT INTO fixture.hookdock_migrations VALUES (1, '0001_hookdock_init.sql', '85dbe36be069339a0de8cdb2c8e8dcb5a20b0891abc9c12c1c9e47e90473fc80', '2026-12-03 18:55:52.001532+00');


--
-- Data for Name: hookdock_queue; Type: TABLE DATA; Schema: fixture; Owner: -
--

INSERT INTO fixture.hookdock_queue VALUES (2, 1, 1700000030500, 1, 1, NULL, NULL, NULL);
INSERT INTO fixture.hookdock_queue VALUES (1, 0, 1700000000500, 0, 1, NULL, NULL, NULL);
INSERT INTO fixture.hookdock_queue VALUES (3, 2, 1700000030500, 1, 1, NULL, 'permanent failure: no such customer', 1700000000500);
INSERT INTO fixture.hookdock_queue VALUES (5, 0, 1700000060500, 1, 1, 'retryable failure: timeout', NULL, NULL);


--
-- Name: hookdock_claim_token_seq; Type: SEQUENCE SET; Schema: fixture; Owner: -
--

SELECT pg_catalog.setval('fixture.hookdock_claim_token_seq', 3, true);


--
-- Name: hookdock_events_id_seq; Type: SEQUENCE SET; Schema: fixture; Owner: -
--

SELECT pg_catalog.setval('fixture.hookdock_events_id_seq', 5, true);


--
-- Name: hookdock_events hookdock_events_pkey; Type: CONSTRAINT; Schema: fixture; Owner: -
--

ALTER TABLE ONLY fixture.hookdock_events
    ADD CONSTRAINT hookdock_events_pkey PRIMARY KEY (id);


--
-- Name: hookdock_events hookdock_events_source_event_id_key; Type: CONSTRAINT; Schema: fixture; Owner: -
--

ALTER TABLE ONLY fixture.hookdock_events
    ADD CONSTRAINT hookdock_events_source_event_id_key UNIQUE (source, event_id);


--
-- Name: hookdock_idempotency hookdock_idempotency_pkey; Type: CONSTRAINT; Schema: fixture; Owner: -
--

ALTER TABLE ONLY fixture.hookdock_idempotency
    ADD CONSTRAINT hookdock_idempotency_pkey PRIMARY KEY (source, event_id);


--
-- Name: hookdock_migrations hookdock_migrations_pkey; Type: CONSTRAINT; Schema: fixture; Owner: -
--

ALTER TABLE ONLY fixture.hookdock_migrations
    ADD CONSTRAINT hookdock_migrations_pkey PRIMARY KEY (version);


--
-- Name: hookdock_queue hookdock_queue_pkey; Type: CONSTRAINT; Schema: fixture; Owner: -
--

ALTER TABLE ONLY fixture.hookdock_queue
    ADD CONSTRAINT hookdock_queue_pkey PRIMARY KEY (id);


--
-- Name: hookdock_idempotency_expires; Type: INDEX; Schema: fixture; Owner: -
--

CREATE INDEX hookdock_idempotency_expires ON fixture.hookdock_idempotency USING btree (expires_at);


--
-- Name: hookdock_queue_dead; Type: INDEX; Schema: fixture; Owner: -
--

CREATE INDEX hookdock_queue_dead ON fixture.hookdock_queue USING btree (id) WHERE (state = 2);


--
-- Name: hookdock_queue_due; Type: INDEX; Schema: fixture; Owner: -
--

CREATE INDEX hookdock_queue_due ON fixture.hookdock_queue USING btree (available_at, id) WHERE (state < 2);


--
-- PostgreSQL database dump complete
--

\unrestrict hGb0sKnWJ4eRUdxsahMGkh6M5fKMSzgSWMV8Pqdx24GfrL0kocGlyEcjS1bkmRn

