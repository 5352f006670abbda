/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The schema of the PostgreSQL store, version 4. The SQL of the steps below
 * is the definition; docs/ARCHITECTURE.md section 7.1 has the table of tables.
 * In short:
 *
 *   meta      name/value: schema_version, the sealed master key check value
 *   pne       pneid, euk (sealed, AAD "pne" 0 PNEID), registered, pngwid, pnid
 *   sg        sgid, key_version (0: inventory stored, no key yet)
 *   sg_key    (sgid, key_version) primary key: one key per version, history
 *             kept; gk sealed (AAD "sg" 0 SGID 0 KeyVersion)
 *   member    (sgid, pneid), key_version, state (0 pending, 1 sent,
 *             2 delivered, 3 failed), ret, fail_reason, attempts, malformed,
 *             pnid; owner_gw/owner_epoch for stage 2 (NULL now)
 *   nonce     (pneid, nonce), seen_ms
 *   version 2: instance, lease ('active': instance_id, session, addresses,
 *             expires_at, epoch), change (stage 2), member_view (state_name),
 *             cpns_fence(instance, session), cpns_lease_acquire(instance,
 *             session, ttl_ms, admin, gw), cpns_lease_release(instance, session)
 *   version 3 (cluster mode, every instance active): gw_session (pngwid,
 *             instance_id, epoch, pnid, since), instance.session,
 *             change.instance_id, sg_key.created_by, index member_owner,
 *             cpns_put_key(instance, sgid, version, gk)
 *   version 4 (the cost of a large inventory): member has no foreign key;
 *             cpns_lock_sgs(sgids) checks and locks the SGs of a statement's
 *             member rows, trigger sg_deleted deletes an SG's members with
 *             it; cpns_put_fresh(sgid, pneids, versions); member_owner
 *             covers owned rows only
 *
 * Identifiers are COLLATE "C": byte order, as SQLite and the engine sort them.
 *
 * "Which members of sg-x are not delivered?":
 *   SELECT pneid, state_name, attempts, ret FROM member_view
 *    WHERE sgid = 'sg-x' AND state <> 2 ORDER BY pneid;
 * "Where is each group?":
 *   SELECT sgid, state_name, count(*) FROM member_view GROUP BY 1, 2 ORDER BY 1, 2;
 *
 * Each step is applied in one transaction with the bump of
 * meta.schema_version, under pg_advisory_xact_lock (store_pg.c). Append
 * steps; never edit a released one.
 */
#include "store_pg_internal.h"

static const char step1[] =
    "CREATE TABLE meta (name text PRIMARY KEY, num bigint, blob bytea,"
    " CHECK ((num IS NULL) <> (blob IS NULL)));"
    "CREATE TABLE pne (pneid text COLLATE \"C\" PRIMARY KEY, euk bytea NOT NULL,"
    " registered boolean NOT NULL DEFAULT false, pngwid text COLLATE \"C\" NOT NULL DEFAULT '',"
    " pnid text COLLATE \"C\" NOT NULL DEFAULT '');"
    "CREATE TABLE sg (sgid text COLLATE \"C\" PRIMARY KEY, key_version bigint NOT NULL DEFAULT 0"
    " CHECK (key_version BETWEEN 0 AND 4294967295));"
    "CREATE TABLE sg_key (sgid text COLLATE \"C\" NOT NULL REFERENCES sg ON DELETE CASCADE,"
    " key_version bigint NOT NULL CHECK (key_version BETWEEN 1 AND 4294967295),"
    " gk bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (sgid, key_version));"
    "CREATE TABLE member (sgid text COLLATE \"C\" NOT NULL REFERENCES sg ON DELETE CASCADE,"
    " pneid text COLLATE \"C\" NOT NULL,"
    " key_version bigint NOT NULL CHECK (key_version BETWEEN 0 AND 4294967295),"
    " state smallint NOT NULL CHECK (state BETWEEN 0 AND 3),"
    " ret int NOT NULL DEFAULT -1, fail_reason int NOT NULL DEFAULT -1,"
    " attempts bigint NOT NULL DEFAULT 0 CHECK (attempts BETWEEN 0 AND 4294967295),"
    " malformed bigint NOT NULL DEFAULT 0 CHECK (malformed BETWEEN 0 AND 4294967295),"
    " pnid text COLLATE \"C\" NOT NULL DEFAULT '', owner_gw text COLLATE \"C\", owner_epoch bigint,"
    " PRIMARY KEY (sgid, pneid)) WITH (fillfactor = 80);"
    "CREATE INDEX member_pne ON member (pneid);"
    "CREATE TABLE nonce (pneid text COLLATE \"C\" NOT NULL, nonce bytea NOT NULL, seen_ms bigint "
    "NOT NULL,"
    " PRIMARY KEY (pneid, nonce));"
    "CREATE INDEX nonce_seen_ms ON nonce (seen_ms);"
    "COMMENT ON COLUMN member.state IS '0 pending, 1 sent, 2 delivered, 3 failed';";

/*
 * Version 2: the active/standby lease, the instances, the change feed of
 * stage 2, the member view, and the functions the store calls. cpns_fence
 * takes the lease row FOR SHARE, so a standby's takeover (an UPDATE of that
 * row) waits for a commit that passed the check, and a commit that starts
 * after the takeover fails it. clock_timestamp(), not now(): a transaction's
 * start time would let a long one pass a lease that expired meanwhile.
 * The lease is held by a session (a random token of one store, i.e. one
 * process), not by a name: a second process started with the same
 * instance id, or a restart while the old lease runs, is a standby until it
 * expires, never a second active instance.
 */
static const char step2[] =
    "CREATE TABLE instance (instance_id text COLLATE \"C\" PRIMARY KEY, admin_addr text NOT NULL "
    "DEFAULT '',"
    " gw_addr text NOT NULL DEFAULT '', lease_expires timestamptz NOT NULL,"
    " started_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE lease (name text PRIMARY KEY, instance_id text COLLATE \"C\" NOT NULL,"
    " admin_addr text NOT NULL DEFAULT '', gw_addr text NOT NULL DEFAULT '',"
    " expires_at timestamptz NOT NULL, epoch bigint NOT NULL DEFAULT 1,"
    " session text NOT NULL DEFAULT '');"
    "CREATE TABLE change (seq bigserial PRIMARY KEY, kind text NOT NULL, key text NOT NULL,"
    " at timestamptz NOT NULL DEFAULT now());"
    "CREATE VIEW member_view AS SELECT sgid, pneid, key_version, state,"
    " CASE state WHEN 0 THEN 'pending' WHEN 1 THEN 'sent' WHEN 2 THEN 'delivered'"
    " WHEN 3 THEN 'failed' END AS state_name,"
    " ret, fail_reason, attempts, malformed, pnid, owner_gw, owner_epoch FROM member;"
    "CREATE FUNCTION cpns_fence(me text, tok text) RETURNS void LANGUAGE plpgsql AS $f$"
    " DECLARE holder text; held_by text; until timestamptz;"
    " BEGIN"
    "  SELECT instance_id, session, expires_at INTO holder, held_by, until FROM lease"
    "   WHERE name = 'active' FOR SHARE;"
    "  IF holder IS DISTINCT FROM me OR held_by IS DISTINCT FROM tok"
    "   OR until <= clock_timestamp() THEN"
    "   RAISE EXCEPTION 'instance % does not hold the active lease (held by %, until %)',"
    "    me, coalesce(holder, 'nobody'), until USING ERRCODE = '" PG_SQLSTATE_FENCED "';"
    "  END IF;"
    " END $f$;"
    "CREATE FUNCTION cpns_lease_acquire(me text, tok text, ttl_ms bigint, admin text, gw text,"
    " OUT held boolean, OUT holder text, OUT holder_admin text, OUT holder_gw text,"
    " OUT expires_in_ms bigint, OUT lease_epoch bigint) LANGUAGE plpgsql AS $f$"
    " DECLARE l lease%ROWTYPE; t timestamptz := clock_timestamp();"
    " BEGIN"
    "  INSERT INTO lease AS o (name, instance_id, session, admin_addr, gw_addr, expires_at,"
    "   epoch)"
    "   VALUES ('active', me, tok, admin, gw, t + ttl_ms * interval '1 millisecond', 1)"
    "   ON CONFLICT (name) DO UPDATE SET instance_id = excluded.instance_id,"
    "    session = excluded.session,"
    "    admin_addr = excluded.admin_addr, gw_addr = excluded.gw_addr,"
    "    expires_at = excluded.expires_at,"
    "    epoch = o.epoch + CASE WHEN o.session = excluded.session THEN 0 ELSE 1 END"
    "   WHERE o.session = excluded.session OR o.expires_at <= t;"
    "  SELECT * INTO l FROM lease WHERE name = 'active';"
    "  held := l.session = tok;"
    "  IF held THEN"
    "   INSERT INTO instance AS i (instance_id, admin_addr, gw_addr, lease_expires)"
    "    VALUES (me, admin, gw, l.expires_at) ON CONFLICT (instance_id) DO UPDATE"
    "    SET admin_addr = excluded.admin_addr, gw_addr = excluded.gw_addr,"
    "    lease_expires = excluded.lease_expires;"
    "  END IF;"
    "  holder := l.instance_id; holder_admin := l.admin_addr; holder_gw := l.gw_addr;"
    "  expires_in_ms := floor(extract(epoch FROM (l.expires_at - clock_timestamp())) * 1000);"
    "  lease_epoch := l.epoch;"
    " END $f$;"
    "CREATE FUNCTION cpns_lease_release(me text, tok text) RETURNS void LANGUAGE plpgsql AS $f$"
    " BEGIN"
    "  UPDATE lease SET expires_at = clock_timestamp()"
    "   WHERE name = 'active' AND session = tok AND expires_at > clock_timestamp();"
    "  UPDATE instance SET lease_expires = clock_timestamp() WHERE instance_id = me;"
    " END $f$;";

/*
 * Version 3: every instance active (cluster mode, store_pg_cluster.c).
 * gw_session: the instance holding each GW's connection and the epoch of
 * its newest registration (the fencing token members carry as owner_gw,
 * owner_epoch). instance.session: one live process per instance id.
 * change.instance_id: who made an admin change (its maker skips it).
 * cpns_put_key: one key per (SGID, KeyVersion) across instances: the sg row
 * is locked FOR UPDATE, the version must follow the stored one (or be this
 * instance's own key of that version, resent after a lost answer: sealed
 * again with another nonce, the blob differs, the key does not; one
 * instance never makes two keys for one version), else CP002 and nothing is
 * written.
 */
static const char step3[] =
    "CREATE TABLE gw_session (pngwid text COLLATE \"C\" PRIMARY KEY,"
    " instance_id text COLLATE \"C\" NOT NULL, epoch bigint NOT NULL,"
    " pnid text COLLATE \"C\" NOT NULL DEFAULT '', since timestamptz NOT NULL DEFAULT now());"
    "ALTER TABLE instance ADD COLUMN session text NOT NULL DEFAULT '';"
    "ALTER TABLE change ADD COLUMN instance_id text COLLATE \"C\" NOT NULL DEFAULT '';"
    "ALTER TABLE sg_key ADD COLUMN created_by text NOT NULL DEFAULT '';"
    "CREATE INDEX member_owner ON member (owner_gw, owner_epoch);"
    "CREATE FUNCTION cpns_put_key(me text, s text, v bigint, g bytea) RETURNS void"
    " LANGUAGE plpgsql AS $f$"
    " DECLARE cur bigint; old bytea; maker text;"
    " BEGIN"
    "  SELECT key_version INTO cur FROM sg WHERE sgid = s FOR UPDATE;"
    "  IF NOT FOUND THEN"
    "   RAISE EXCEPTION 'SG % does not exist (deleted by another instance)', s"
    "    USING ERRCODE = '" PG_SQLSTATE_EXISTS "';"
    "  END IF;"
    "  SELECT gk, created_by INTO old, maker FROM sg_key WHERE sgid = s AND key_version = v;"
    "  IF FOUND AND (old = g OR maker = me) THEN"
    "   UPDATE sg SET key_version = v WHERE sgid = s AND key_version < v; RETURN;"
    "  END IF;"
    "  IF FOUND OR cur <> v - 1 THEN"
    "   RAISE EXCEPTION 'SG % KeyVersion %: another instance made a key first (now %)', s, v, cur"
    "    USING ERRCODE = '" PG_SQLSTATE_EXISTS "';"
    "  END IF;"
    "  INSERT INTO sg_key (sgid, key_version, gk, created_by) VALUES (s, v, g, me);"
    "  UPDATE sg SET key_version = v WHERE sgid = s;"
    " END $f$;";

/*
 * Version 4: a 100,000-member SG Inventory is one INSERT of 100,000 rows
 * committed before the Group Key may be drawn (7.8.6.3-1), and the foreign
 * key of member.sgid checked each row with its own query: a third of that
 * commit's time. The same rule now costs one statement per commit:
 * cpns_lock_sgs() takes the SGs of the member rows a statement writes FOR
 * KEY SHARE (the lock the foreign key took per row, so a concurrent DELETE
 * or cpns_put_key() of that SG waits for this commit) and raises 23503
 * when one is missing; the cascade is a statement trigger, so an
 * operator's DELETE FROM sg still takes the members with it. Its DELETE
 * runs after the SG rows are locked and deleted, with a new snapshot (READ
 * COMMITTED), so member rows a concurrent commit wrote under
 * cpns_lock_sgs() go too. member_owner leaves out the rows no GW session
 * owns (all of them with one active instance): the queries that use it ask
 * for one owner. cpns_put_fresh() writes the pending rows of one SG that
 * carry nothing but SGID, PNEID and KeyVersion (an inventory, members
 * added): into an SG without member rows as a plain INSERT, which skips
 * the conflict check of an upsert (another sixth of that commit), else as
 * the upsert. With one active instance nobody else writes member rows
 * (cluster mode inserts its own way), so the plain INSERT cannot meet a row
 * that appeared meanwhile.
 */
static const char step4[] =
    "ALTER TABLE member DROP CONSTRAINT member_sgid_fkey;"
    "DROP INDEX member_owner;"
    "CREATE INDEX member_owner ON member (owner_gw, owner_epoch) WHERE owner_gw IS NOT NULL;"
    "CREATE FUNCTION cpns_lock_sgs(s text[]) RETURNS void LANGUAGE plpgsql AS $f$"
    " DECLARE gone text;"
    " BEGIN"
    "  PERFORM 1 FROM sg WHERE sgid = ANY(s) ORDER BY sgid FOR KEY SHARE;"
    "  SELECT x INTO gone FROM unnest(s) AS x"
    "   WHERE NOT EXISTS (SELECT 1 FROM sg WHERE sgid = x) LIMIT 1;"
    "  IF FOUND THEN"
    "   RAISE EXCEPTION 'member rows of SG %, which is not in table sg (the foreign key of"
    " member.sgid)', gone USING ERRCODE = 'foreign_key_violation';"
    "  END IF;"
    " END $f$;"
    "CREATE FUNCTION cpns_put_fresh(s text, p text[], v bigint[]) RETURNS void"
    " LANGUAGE plpgsql AS $f$"
    " BEGIN"
    "  IF EXISTS (SELECT 1 FROM member WHERE sgid = s) THEN"
    "   INSERT INTO member (sgid, pneid, key_version, state) SELECT s, unnest(p), unnest(v), 0"
    "    ON CONFLICT (sgid, pneid) DO UPDATE SET key_version = excluded.key_version, state = 0,"
    "    ret = -1, fail_reason = -1, attempts = 0, malformed = 0, pnid = '';"
    "  ELSE"
    "   INSERT INTO member (sgid, pneid, key_version, state) SELECT s, unnest(p), unnest(v), 0;"
    "  END IF;"
    " END $f$;"
    "CREATE FUNCTION cpns_sg_deleted() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    "  DELETE FROM member m USING gone g WHERE m.sgid = g.sgid;"
    "  RETURN NULL;"
    " END $f$;"
    "CREATE TRIGGER sg_deleted AFTER DELETE ON sg REFERENCING OLD TABLE AS gone"
    " FOR EACH STATEMENT EXECUTE FUNCTION cpns_sg_deleted();";

const pg_migration pg_migrations[] = {
    {1, step1},
    {2, step2},
    {3, step3},
    {4, step4},
};

const size_t pg_n_migrations = CPNS_ARRAY_LEN(pg_migrations);
