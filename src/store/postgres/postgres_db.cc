#include "store/postgres/postgres_db.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <iterator>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/clock.h"

namespace onlined::store {

namespace {

// Schema versions, in order (onlined_schema says which are applied). Times
// are milliseconds since the epoch in bigint, as in the SQLite engine.
constexpr const char* kV1 = R"sql(
CREATE TABLE chats(
  chat_id text PRIMARY KEY, channel text NOT NULL, user_id text NOT NULL,
  created_at bigint NOT NULL, last_seq bigint NOT NULL DEFAULT 0, updated_at bigint NOT NULL,
  user_ack_seq bigint NOT NULL DEFAULT 0, user_read_seq bigint NOT NULL DEFAULT 0,
  unread bigint NOT NULL DEFAULT 0, pending_nid bigint NOT NULL DEFAULT 0,
  UNIQUE(channel, user_id));
CREATE INDEX chats_newest ON chats(channel, updated_at DESC, chat_id DESC);
CREATE TABLE messages(
  chat_id text NOT NULL, seq bigint NOT NULL, id text NOT NULL, from_role text NOT NULL,
  sender_id text NOT NULL, text text NOT NULL, created_at bigint NOT NULL, acked_at bigint,
  PRIMARY KEY(chat_id, seq));
CREATE TABLE idem(
  channel text NOT NULL, scope text NOT NULL, key text NOT NULL, chat_id text NOT NULL,
  seq bigint NOT NULL, body_hash text NOT NULL, created_at bigint NOT NULL,
  PRIMARY KEY(channel, scope, key));
CREATE TABLE users(
  channel text NOT NULL, user_id text NOT NULL, name text NOT NULL DEFAULT '',
  phone text NOT NULL DEFAULT '', sms_opt_in boolean NOT NULL DEFAULT false,
  updated_at bigint NOT NULL, PRIMARY KEY(channel, user_id));
CREATE INDEX users_by_phone ON users(phone);
CREATE TABLE notifications(
  id bigserial PRIMARY KEY, channel text NOT NULL, user_id text NOT NULL, chat_id text NOT NULL,
  first_seq bigint NOT NULL, last_seq bigint NOT NULL, state text NOT NULL,
  reason text NOT NULL DEFAULT '', due_at bigint NOT NULL, attempts int NOT NULL DEFAULT 0,
  provider_sid text NOT NULL DEFAULT '', provider_status text NOT NULL DEFAULT '',
  phone text NOT NULL DEFAULT '', body text NOT NULL DEFAULT '',
  claimed_by text NOT NULL DEFAULT '', lease_until bigint NOT NULL DEFAULT 0,
  created_at bigint NOT NULL, updated_at bigint NOT NULL);
CREATE INDEX notifications_due ON notifications(state, due_at);
CREATE INDEX notifications_lease ON notifications(lease_until) WHERE state = 'sending';
CREATE INDEX notifications_chat ON notifications(chat_id, state);
CREATE INDEX notifications_user ON notifications(channel, user_id, id DESC);
CREATE INDEX notifications_sid ON notifications(provider_sid) WHERE provider_sid <> '';
CREATE TABLE inbound_sms(sid text PRIMARY KEY, received_at bigint NOT NULL);

-- One send in one round trip (store::Db::Append). Under READ COMMITTED:
-- the idempotency key is claimed first (a concurrent insert of the same key
-- waits for the other transaction, then sees its row), the chat's counter
-- moves under its row lock (seq gapless and unique across writers), and the
-- outbox entry is joined or made while that lock is held.
CREATE FUNCTION onlined_append(p_channel text, p_chat_id text, p_user_id text, p_from text,
    p_sender text, p_text text, p_scope text, p_key text, p_hash text, p_msg_id text,
    p_new_chat_id text, p_now bigint, p_sms_due bigint,
    OUT r_status text, OUT r_chat_id text, OUT r_seq bigint, OUT r_id text, OUT r_from text,
    OUT r_sender text, OUT r_text text, OUT r_created_at bigint, OUT r_acked_at bigint,
    OUT r_user_id text, OUT r_chat_created boolean, OUT r_notification_id bigint)
  LANGUAGE plpgsql AS $$
DECLARE
  v_hash text;
  v_idem_chat text;
  v_idem_seq bigint;
  v_pending bigint := 0;
  v_state text;
BEGIN
  r_chat_created := false;
  r_notification_id := 0;
  IF p_key <> '' THEN
    INSERT INTO idem AS i (channel, scope, key, chat_id, seq, body_hash, created_at)
      VALUES (p_channel, p_scope, p_key, '', 0, p_hash, p_now) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT i.body_hash, i.chat_id, i.seq INTO v_hash, v_idem_chat, v_idem_seq FROM idem i
        WHERE i.channel = p_channel AND i.scope = p_scope AND i.key = p_key;
      IF v_hash <> p_hash THEN
        r_status := 'conflict';
        RETURN;
      END IF;
      SELECT 'duplicate', m.chat_id, m.seq, m.id, m.from_role, m.sender_id, m.text, m.created_at,
          m.acked_at, c.user_id
        INTO r_status, r_chat_id, r_seq, r_id, r_from, r_sender, r_text, r_created_at,
          r_acked_at, r_user_id
        FROM messages m JOIN chats c ON c.chat_id = m.chat_id
        WHERE m.chat_id = v_idem_chat AND m.seq = v_idem_seq;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'idempotency key points at a missing message';
      END IF;
      RETURN;
    END IF;
  END IF;

  IF p_chat_id <> '' THEN
    UPDATE chats c SET last_seq = c.last_seq + 1, updated_at = GREATEST(c.updated_at, p_now),
        unread = CASE WHEN p_from = 'user' THEN c.unread + 1 ELSE 0 END
      WHERE c.chat_id = p_chat_id AND c.channel = p_channel
        AND (p_from <> 'user' OR c.user_id = p_user_id)
      RETURNING c.chat_id, c.last_seq, c.user_id, c.pending_nid
        INTO r_chat_id, r_seq, r_user_id, v_pending;
  ELSIF p_from = 'user' THEN
    UPDATE chats c SET last_seq = c.last_seq + 1, updated_at = GREATEST(c.updated_at, p_now),
        unread = c.unread + 1
      WHERE c.channel = p_channel AND c.user_id = p_user_id
      RETURNING c.chat_id, c.last_seq, c.user_id, c.pending_nid
        INTO r_chat_id, r_seq, r_user_id, v_pending;
    IF r_chat_id IS NULL THEN
      INSERT INTO chats(chat_id, channel, user_id, created_at, last_seq, updated_at, unread)
        VALUES (p_new_chat_id, p_channel, p_user_id, p_now, 1, p_now, 1)
        ON CONFLICT (channel, user_id) DO NOTHING;
      IF FOUND THEN
        r_chat_id := p_new_chat_id; r_seq := 1; r_user_id := p_user_id; r_chat_created := true;
      ELSE
        -- Another writer opened it a moment ago: move its counter instead.
        UPDATE chats c SET last_seq = c.last_seq + 1,
            updated_at = GREATEST(c.updated_at, p_now), unread = c.unread + 1
          WHERE c.channel = p_channel AND c.user_id = p_user_id
          RETURNING c.chat_id, c.last_seq, c.user_id, c.pending_nid
        INTO r_chat_id, r_seq, r_user_id, v_pending;
      END IF;
    END IF;
  END IF;
  IF r_chat_id IS NULL THEN
    IF p_key <> '' THEN
      DELETE FROM idem i WHERE i.channel = p_channel AND i.scope = p_scope AND i.key = p_key;
    END IF;
    r_status := 'no_chat';
    RETURN;
  END IF;

  INSERT INTO messages(chat_id, seq, id, from_role, sender_id, text, created_at)
    VALUES (r_chat_id, r_seq, p_msg_id, p_from, p_sender, p_text, p_now);
  IF p_key <> '' THEN
    UPDATE idem i SET chat_id = r_chat_id, seq = r_seq
      WHERE i.channel = p_channel AND i.scope = p_scope AND i.key = p_key;
  END IF;
  IF p_sms_due > 0 THEN
    -- Joins the chat's pending notification (chats.pending_nid, found by
    -- its key: the hot path never searches the outbox): one SMS tells of
    -- all of them. One claimed meanwhile (sending) is waited for, then no
    -- longer matches: a new one is made and becomes the chat's pending one.
    -- By its key alone: a second condition (state) could lead a plan cached
    -- while the table was small onto another index.
    IF v_pending > 0 THEN
      SELECT n.state INTO v_state FROM notifications n WHERE n.id = v_pending FOR UPDATE;
      IF v_state = 'scheduled' THEN
        UPDATE notifications n SET last_seq = r_seq, updated_at = p_now WHERE n.id = v_pending;
        r_notification_id := v_pending;
      END IF;
    END IF;
    IF r_notification_id IS NULL OR r_notification_id = 0 THEN
      INSERT INTO notifications(channel, user_id, chat_id, first_seq, last_seq, state, reason,
          due_at, created_at, updated_at)
        VALUES (p_channel, r_user_id, r_chat_id, r_seq, r_seq, 'scheduled', 'waiting', p_sms_due,
          p_now, p_now)
        RETURNING id INTO r_notification_id;
      UPDATE chats c SET pending_nid = r_notification_id WHERE c.chat_id = r_chat_id;
    END IF;
  END IF;
  r_status := 'created';
  r_id := p_msg_id;
  r_from := p_from;
  r_sender := p_sender;
  r_text := p_text;
  r_created_at := p_now;
  r_notification_id := COALESCE(r_notification_id, 0);
END $$;
)sql";
// Version 2: revoked subjects (Db::PutRevocation).
constexpr const char* kV2 = R"sql(
CREATE TABLE revocations(
  channel text NOT NULL, role text NOT NULL, subject text NOT NULL,
  revoked_at bigint NOT NULL, expires_at bigint NOT NULL,
  PRIMARY KEY(channel, role, subject));
)sql";
constexpr const char* kMigrations[] = {kV1, kV2};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

// A key for pg_advisory_lock: the schema's migrations, one at a time.
constexpr int64_t kMigrationLock = 0x6f6e6c696e6564;  // "onlined"
constexpr int64_t kReconnectMs = 500;

// Text parameters for one statement; nullptr for SQL NULL.
class Params {
 public:
  Params& S(const std::string& v) {
    vals_.push_back(v);
    nulls_.push_back(false);
    return *this;
  }
  Params& I(int64_t v) { return S(std::to_string(v)); }
  Params& B(bool v) { return S(v ? "t" : "f"); }
  Params& Null() {
    vals_.emplace_back();
    nulls_.push_back(true);
    return *this;
  }
  // Pointers into vals_: valid while this object lives unchanged.
  std::vector<const char*> Pointers() const {
    std::vector<const char*> p;
    p.reserve(vals_.size());
    for (size_t i = 0; i < vals_.size(); ++i) p.push_back(nulls_[i] ? nullptr : vals_[i].c_str());
    return p;
  }
  int size() const { return static_cast<int>(vals_.size()); }

 private:
  std::vector<std::string> vals_;
  std::vector<bool> nulls_;
};

// A result, freed when it goes.
class Result {
 public:
  explicit Result(PGresult* r) : r_(r) {}
  Result(Result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  Result& operator=(Result&&) = delete;
  ~Result() { PQclear(r_); }
  int rows() const { return PQntuples(r_); }
  bool IsNull(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  std::string Text(int row, int col) const {
    return std::string(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
  }
  int64_t Int(int row, int col) const {
    const char* p = PQgetvalue(r_, row, col);
    int64_t v = 0;
    std::from_chars(p, p + PQgetlength(r_, row, col), v);
    return v;
  }
  bool Bool(int row, int col) const { return PQgetvalue(r_, row, col)[0] == 't'; }
  int64_t Affected() const {
    const char* p = PQcmdTuples(r_);
    int64_t v = 0;
    std::from_chars(p, p + std::char_traits<char>::length(p), v);
    return v;
  }

 private:
  PGresult* r_;
};

class PostgresDb final : public Db {
 public:
  PostgresDb(std::string url, bool writer, int64_t timeout_ms)
      : url_(std::move(url)), writer_(writer), timeout_ms_(timeout_ms) {
    Connect();
    try {
      if (writer_) {
        // A migration may wait for another node's (the advisory lock) and
        // build indexes: no deadline.
        const int64_t t = std::exchange(timeout_ms_, 0);
        Migrate();
        timeout_ms_ = t;
      }
    } catch (...) {
      Close();  // no destructor runs for a constructor that throws
      throw;
    }
  }
  ~PostgresDb() override { Close(); }
  PostgresDb(const PostgresDb&) = delete;
  PostgresDb& operator=(const PostgresDb&) = delete;

  void Begin() override { Exec("BEGIN"); }
  void BeginRead() override { Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); }
  void Commit() override { Exec("COMMIT"); }
  void Rollback() override {
    if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK &&
        PQtransactionStatus(conn_) != PQTRANS_IDLE) {
      try {
        Exec("ROLLBACK");
      } catch (const DbError&) {  // lost or timed out: closed, so rolled back
      }
    }
  }
  void Savepoint() override { Exec("SAVEPOINT op"); }
  void ReleaseSavepoint() override { Exec("RELEASE op"); }
  void RollbackToSavepoint() override {
    Exec("ROLLBACK TO op");
    Exec("RELEASE op");
  }
  bool Unreachable() const override { return conn_ == nullptr; }

  // BEGIN, the operations, COMMIT: savepoints would cost two round trips an
  // operation. After a failure of one, the group is rolled back and redone
  // one operation per transaction, so that only the failing one fails.
  bool RunGroup(size_t n, const std::function<void(size_t)>& run, std::vector<std::string>& errors,
                std::string& group_error) override {
    errors.assign(n, std::string());
    try {
      Exec("BEGIN");
      for (size_t i = 0; i < n; ++i) run(i);
      Exec("COMMIT");
      return true;
    } catch (const DbUnavailable& e) {
      group_error = e.what();
      return false;
    } catch (const std::exception& e) {
      group_error = e.what();
      Rollback();
    }
    if (n == 1) {
      // The one operation failed and nothing else was in the group: that is
      // the group committed without it (the caller may redo its parts).
      errors[0] = group_error;
      group_error.clear();
      return true;
    }
    for (size_t i = 0; i < n; ++i) {
      try {
        Exec("BEGIN");
        run(i);
        Exec("COMMIT");
      } catch (const std::exception& e) {
        errors[i] = e.what();
        Rollback();
      }
    }
    return true;
  }

  AppendResult Append(const AppendInput& in) override {
    return ReadAppend(Run(kAppendSql, AppendParams(in)));
  }

  // Sends queued together go as one pipeline of up to this many; bounded so
  // that neither side's socket buffer fills while the other waits.
  size_t AppendUnit() const override { return 128; }

  // One pipeline: every call sent, one sync, then every answer read.
  std::vector<AppendResult> AppendMany(const std::vector<const AppendInput*>& in) override {
    if (in.size() == 1) return {Append(*in[0])};
    const std::string& name = Prepared(kAppendSql);
    std::vector<Params> params;
    params.reserve(in.size());
    for (const AppendInput* a : in) params.push_back(AppendParams(*a));
    if (PQenterPipelineMode(conn_) != 1) Fail(nullptr, "pipeline");
    // Leaves pipeline mode; a connection stuck in it (answers unread after
    // a failure) is closed and opened afresh by the next operation.
    struct Leave {
      PostgresDb* db;
      ~Leave() {
        PGconn* c = db->conn_;
        if (c != nullptr && PQpipelineStatus(c) != PQ_PIPELINE_OFF && PQexitPipelineMode(c) != 1) {
          db->Close();
        }
      }
    } leave{this};
    for (const Params& p : params) {
      std::vector<const char*> vals = p.Pointers();
      if (PQsendQueryPrepared(conn_, name.c_str(), p.size(), vals.data(), nullptr, nullptr, 0) !=
          1) {
        Fail(nullptr, "pipeline send");
      }
    }
    if (PQpipelineSync(conn_) != 1) Fail(nullptr, "pipeline sync");
    std::vector<AppendResult> out;
    out.reserve(in.size());
    std::string first_error;
    for (size_t i = 0; i < in.size(); ++i) {
      PGresult* res = Next("pipeline");
      if (res == nullptr) Fail(nullptr, "pipeline: an answer is missing");
      const ExecStatusType st = PQresultStatus(res);
      if (st == PGRES_TUPLES_OK && first_error.empty()) {
        out.push_back(ReadAppend(Result(res)));
      } else {
        if (first_error.empty()) {
          if (PQstatus(conn_) != CONNECTION_OK) Fail(res, "pipeline");
          first_error = PQresultErrorMessage(res);
        }
        PQclear(res);  // PGRES_PIPELINE_ABORTED for those after a failure
      }
      PQclear(Next("pipeline"));  // the end of this statement's results
    }
    PGresult* sync = Next("pipeline");
    const bool synced = sync != nullptr && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    if (!synced) Fail(nullptr, "pipeline: no sync");
    if (!first_error.empty()) throw DbError("postgres: a pipelined send failed: " + first_error);
    return out;
  }

  std::optional<Chat> GetChat(const std::string& channel, const std::string& chat_id) override {
    Result r =
        Run(ChatSelect() + " WHERE c.chat_id=$1 AND c.channel=$2", Params().S(chat_id).S(channel));
    if (r.rows() == 0) return std::nullopt;
    return ReadChat(r, 0);
  }

  std::optional<Chat> FindChatOfUser(const std::string& channel,
                                     const std::string& user_id) override {
    Result r =
        Run(ChatSelect() + " WHERE c.channel=$1 AND c.user_id=$2", Params().S(channel).S(user_id));
    if (r.rows() == 0) return std::nullopt;
    return ReadChat(r, 0);
  }

  bool InsertChat(const Chat& c) override {
    Result r =
        Run("INSERT INTO chats(chat_id, channel, user_id, created_at, last_seq, updated_at)"
            " VALUES($1,$2,$3,$4,0,$4) ON CONFLICT (channel, user_id) DO NOTHING",
            Params().S(c.chat_id).S(c.channel).S(c.user_id).I(c.created_at));
    return r.Affected() == 1;
  }

  std::vector<Chat> ListChats(const std::string& channel,
                              std::optional<std::pair<int64_t, std::string>> before,
                              int limit) override {
    std::vector<Chat> out;
    Result r = before ? Run(ChatSelect() +
                                " WHERE c.channel=$1 AND (c.updated_at, c.chat_id) < ($2, $3)"
                                " ORDER BY c.updated_at DESC, c.chat_id DESC LIMIT $4",
                            Params().S(channel).I(before->first).S(before->second).I(limit))
                      : Run(ChatSelect() +
                                " WHERE c.channel=$1 ORDER BY c.updated_at DESC, c.chat_id DESC"
                                " LIMIT $2",
                            Params().S(channel).I(limit));
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadChat(r, i));
    return out;
  }

  std::vector<Chat> ChatsOfUser(const std::string& channel, const std::string& user_id,
                                int limit) override {
    std::vector<Chat> out;
    Result r = Run(
        ChatSelect() + " WHERE c.channel=$1 AND c.user_id=$2 ORDER BY c.updated_at DESC LIMIT $3",
        Params().S(channel).S(user_id).I(limit));
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadChat(r, i));
    return out;
  }

  void UpdateChatAfterMessage(const std::string& chat_id, int64_t seq, int64_t at,
                              bool from_user) override {
    Run("UPDATE chats SET last_seq=$2, updated_at=GREATEST(updated_at, $3),"
        " unread=CASE WHEN $4 THEN unread+1 ELSE 0 END WHERE chat_id=$1",
        Params().S(chat_id).I(seq).I(at).B(from_user));
  }

  int64_t RaiseUserAck(const std::string& chat_id, int64_t seq, int64_t at) override {
    // The mark before this raise: the messages at or below it have their
    // time already (db.h), so only those above it are looked at. Under
    // concurrent raises of one chat the old mark read here can only be
    // older than the row's, which widens the range and is still right.
    Result up =
        Run("UPDATE chats c SET user_ack_seq=$2"
            " FROM (SELECT user_ack_seq AS old FROM chats WHERE chat_id=$1) o"
            " WHERE c.chat_id=$1 AND c.user_ack_seq<$2 AND c.last_seq>=$2 RETURNING o.old",
            Params().S(chat_id).I(seq));
    if (up.rows() > 0) {
      Run("UPDATE messages SET acked_at=$4 WHERE chat_id=$1 AND seq>$2 AND seq<=$3"
          " AND acked_at IS NULL",
          Params().S(chat_id).I(up.Int(0, 0)).I(seq).I(at));
      return seq;
    }
    Result r = Run("SELECT user_ack_seq FROM chats WHERE chat_id=$1", Params().S(chat_id));
    return r.rows() > 0 ? r.Int(0, 0) : 0;
  }

  int64_t RaiseUserRead(const std::string& chat_id, int64_t seq) override {
    Run("UPDATE chats SET user_read_seq=$2"
        " WHERE chat_id=$1 AND user_read_seq<$2 AND last_seq>=$2",
        Params().S(chat_id).I(seq));
    Result r = Run("SELECT user_read_seq FROM chats WHERE chat_id=$1", Params().S(chat_id));
    return r.rows() > 0 ? r.Int(0, 0) : 0;
  }

  void InsertMessage(const Message& m) override {
    Run("INSERT INTO messages(chat_id, seq, id, from_role, sender_id, text, created_at)"
        " VALUES($1,$2,$3,$4,$5,$6,$7)",
        Params().S(m.chat_id).I(m.seq).S(m.id).S(m.from).S(m.sender_id).S(m.text).I(m.created_at));
  }

  std::vector<Message> ListMessages(const std::string& chat_id, int64_t after_seq,
                                    int limit) override {
    std::vector<Message> out;
    Result r = Run(MessageSelect() + " WHERE chat_id=$1 AND seq>$2 ORDER BY seq LIMIT $3",
                   Params().S(chat_id).I(after_seq).I(limit));
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadMessage(r, i, 0));
    return out;
  }

  std::optional<Message> GetMessage(const std::string& chat_id, int64_t seq) override {
    Result r = Run(MessageSelect() + " WHERE chat_id=$1 AND seq=$2", Params().S(chat_id).I(seq));
    if (r.rows() == 0) return std::nullopt;
    return ReadMessage(r, 0, 0);
  }

  std::optional<UserProfile> GetUser(const std::string& channel,
                                     const std::string& user_id) override {
    Result r =
        Run("SELECT name, phone, sms_opt_in, updated_at FROM users WHERE channel=$1 AND user_id=$2",
            Params().S(channel).S(user_id));
    if (r.rows() == 0) return std::nullopt;
    return UserProfile{channel, user_id, r.Text(0, 0), r.Text(0, 1), r.Bool(0, 2), r.Int(0, 3)};
  }

  void PutUser(const UserProfile& u) override {
    Run("INSERT INTO users(channel, user_id, name, phone, sms_opt_in, updated_at)"
        " VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT (channel, user_id) DO UPDATE SET"
        " name=EXCLUDED.name, phone=EXCLUDED.phone, sms_opt_in=EXCLUDED.sms_opt_in,"
        " updated_at=EXCLUDED.updated_at",
        Params().S(u.channel).S(u.user_id).S(u.name).S(u.phone).B(u.sms_opt_in).I(u.updated_at));
  }

  int SetOptInByPhone(const std::string& phone, bool opt_in, int64_t at) override {
    Result r =
        Run("UPDATE users SET sms_opt_in=$2, updated_at=$3 WHERE phone=$1 AND sms_opt_in<>$2",
            Params().S(phone).B(opt_in).I(at));
    return static_cast<int>(r.Affected());
  }

  bool RecordInboundSms(const std::string& sid, int64_t at) override {
    Result r = Run("INSERT INTO inbound_sms(sid, received_at) VALUES($1,$2) ON CONFLICT DO NOTHING",
                   Params().S(sid).I(at));
    return r.Affected() == 1;
  }

  void PutRevocation(const Revocation& r, int64_t now) override {
    Run("INSERT INTO revocations(channel, role, subject, revoked_at, expires_at)"
        " VALUES($1,$2,$3,$4,$5) ON CONFLICT(channel, role, subject) DO UPDATE SET"
        " revoked_at=excluded.revoked_at, expires_at=excluded.expires_at"
        " WHERE excluded.revoked_at > revocations.revoked_at",
        Params().S(r.channel).S(r.role).S(r.subject).I(r.revoked_at).I(r.expires_at));
    Run("DELETE FROM revocations WHERE expires_at > 0 AND expires_at <= $1", Params().I(now));
  }

  std::vector<Revocation> Revocations(int64_t now) override {
    Result r =
        Run("SELECT channel, role, subject, revoked_at, expires_at FROM revocations"
            " WHERE expires_at = 0 OR expires_at > $1",
            Params().I(now));
    std::vector<Revocation> out;
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({r.Text(i, 0), r.Text(i, 1), r.Text(i, 2), r.Int(i, 3), r.Int(i, 4)});
    return out;
  }

  int64_t InsertNotification(const Notification& n) override {
    Result r = Run(
        "INSERT INTO notifications(channel, user_id, chat_id, first_seq, last_seq, state, reason,"
        " due_at, attempts, created_at, updated_at) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$10)"
        " RETURNING id",
        Params()
            .S(n.channel)
            .S(n.user_id)
            .S(n.chat_id)
            .I(n.first_seq)
            .I(n.last_seq)
            .S(NotifyStateName(n.state))
            .S(n.reason)
            .I(n.due_at)
            .I(n.attempts)
            .I(n.created_at));
    return r.Int(0, 0);
  }

  void UpdateNotification(const Notification& n) override {
    Run("UPDATE notifications SET first_seq=$2, last_seq=$3, state=$4, reason=$5, due_at=$6,"
        " attempts=$7, provider_sid=$8, provider_status=$9, phone=$10, body=$11, updated_at=$12,"
        " claimed_by=$13, lease_until=$14 WHERE id=$1",
        Params()
            .I(n.id)
            .I(n.first_seq)
            .I(n.last_seq)
            .S(NotifyStateName(n.state))
            .S(n.reason)
            .I(n.due_at)
            .I(n.attempts)
            .S(n.provider_sid)
            .S(n.provider_status)
            .S(n.phone)
            .S(n.body)
            .I(n.updated_at)
            .S(n.claimed_by)
            .I(n.lease_until));
  }

  std::optional<Notification> GetNotification(int64_t id) override {
    Result r = Run(NotificationSelect() + " WHERE id=$1", Params().I(id));
    if (r.rows() == 0) return std::nullopt;
    return ReadNotification(r, 0);
  }

  std::optional<Notification> NotificationBySid(const std::string& sid) override {
    if (sid.empty()) return std::nullopt;
    Result r = Run(NotificationSelect() + " WHERE provider_sid=$1 LIMIT 1", Params().S(sid));
    if (r.rows() == 0) return std::nullopt;
    return ReadNotification(r, 0);
  }

  bool AnyDue(int64_t now) override {
    Result r =
        Run("SELECT 1 FROM notifications WHERE (state='scheduled' AND due_at<=$1) OR"
            " (state='sending' AND lease_until<=$1) LIMIT 1",
            Params().I(now));
    return r.rows() > 0;
  }

  std::vector<Notification> ClaimDue(int64_t now, int limit) override {
    std::vector<Notification> out;
    Result r = Run(NotificationSelect() +
                       " WHERE (state='scheduled' AND due_at<=$1) OR (state='sending' AND"
                       " lease_until<=$1) ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                   Params().I(now).I(limit));
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadNotification(r, i));
    return out;
  }

  std::vector<Notification> NotificationsOfUser(const std::string& channel,
                                                const std::string& user_id, int limit) override {
    std::vector<Notification> out;
    Result r =
        Run(NotificationSelect() + " WHERE channel=$1 AND user_id=$2 ORDER BY id DESC LIMIT $3",
            Params().S(channel).S(user_id).I(limit));
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadNotification(r, i));
    return out;
  }

  std::optional<int64_t> LastSmsSentAt(const std::string& channel, const std::string& user_id,
                                       int64_t except_id) override {
    Result r =
        Run("SELECT MAX(updated_at) FROM notifications WHERE channel=$1 AND user_id=$2 AND state IN"
            " ('sent','sending') AND id<>$3",
            Params().S(channel).S(user_id).I(except_id));
    if (r.rows() == 0 || r.IsNull(0, 0)) return std::nullopt;
    return r.Int(0, 0);
  }

  int EndLeasesOf(const std::string& owner, int64_t now) override {
    Result r =
        Run("UPDATE notifications SET lease_until=$2 WHERE state='sending' AND claimed_by=$1 AND"
            " lease_until>$2",
            Params().S(owner).I(now));
    return static_cast<int>(r.Affected());
  }

 private:
  void Connect() {
    // Defaults first: the URL's own settings, expanded from dbname, win.
    // Connected without blocking, so that a server that accepts the TCP
    // connection and never answers (stopped, hung) costs the deadline only.
    const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
    const char* vals[] = {"2", "onlined", url_.c_str(), nullptr};
    conn_ = PQconnectStartParams(keys, vals, 1);
    const int64_t deadline = base::SteadyMs() + (timeout_ms_ > 0 ? timeout_ms_ : 10000);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (conn_ != nullptr && PQstatus(conn_) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED) {
      if (!WaitSocket(st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline)) {
        Close();
        next_attempt_ms_ = base::SteadyMs() + kReconnectMs;
        throw DbUnavailable("postgres: cannot connect: no answer within " +
                            std::to_string(timeout_ms_ > 0 ? timeout_ms_ : 10000) + " ms");
      }
      st = PQconnectPoll(conn_);
    }
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
      std::string msg = conn_ ? PQerrorMessage(conn_) : "out of memory";
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
      Close();
      next_attempt_ms_ = base::SteadyMs() + kReconnectMs;
      throw DbUnavailable("postgres: cannot connect: " + msg);
    }
    prepared_.clear();
    // The server's notices ("already exists, skipping") are not the log's business.
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
    // Short statements only: a parallel plan's worker start-up (milliseconds,
    // far more on a busy machine) would be most of a chat list's time.
    try {
      Exec("SET max_parallel_workers_per_gather = 0");
    } catch (const DbUnavailable&) {
      throw;
    } catch (const DbError& e) {
      Close();
      next_attempt_ms_ = base::SteadyMs() + kReconnectMs;
      throw DbUnavailable(std::string("postgres: session setup failed: ") + e.what());
    }
  }

  // Waits until the connection's socket is ready for `events`; false at the
  // deadline (0: none).
  bool WaitSocket(short events, int64_t deadline) {
    while (true) {
      int wait = -1;
      if (deadline > 0) {
        const int64_t left = deadline - base::SteadyMs();
        if (left <= 0) return false;
        wait = static_cast<int>(std::min<int64_t>(left, 60000));
      }
      pollfd p{PQsocket(conn_), events, 0};
      const int r = poll(&p, 1, wait);
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return true;  // the next libpq call reports it
    }
  }

  // The next result of the statement in flight (nullptr: no more), waiting
  // at most timeout_ms_ for the server. A server that stops answering
  // (SIGSTOP, a hung disk, a partition that drops nothing) is treated as
  // lost: the connection is closed and the operation fails with
  // DbUnavailable. A COMMIT that was sent is then of unknown outcome; the
  // caller's answer says so (a retry with the same idempotency key is safe).
  PGresult* Next(const char* what) {
    const int64_t deadline = timeout_ms_ > 0 ? base::SteadyMs() + timeout_ms_ : 0;
    while (PQisBusy(conn_) == 1) {
      if (!WaitSocket(POLLIN, deadline)) {
        Close();
        next_attempt_ms_ = base::SteadyMs() + kReconnectMs;
        throw DbUnavailable("postgres: no answer within " + std::to_string(timeout_ms_) + " ms (" +
                            what + ")");
      }
      if (PQconsumeInput(conn_) != 1) Fail(nullptr, what);
    }
    return PQgetResult(conn_);
  }

  // The first result of the statement just sent; the rest are read (and
  // their first error kept) so that the connection is ready for the next.
  PGresult* Collect(const char* what) {
    PGresult* first = Next(what);
    while (PGresult* more = Next(what)) {
      const ExecStatusType st = PQresultStatus(more);
      if (first != nullptr && PQresultStatus(first) != PGRES_FATAL_ERROR &&
          st == PGRES_FATAL_ERROR) {
        std::swap(first, more);
      }
      PQclear(more);
    }
    return first;
  }

  void Close() {
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
  }

  // A usable connection, reopened if it was lost (not more often than every
  // kReconnectMs: while the server is down every operation fails at once).
  void Ensure() {
    if (conn_ != nullptr) return;
    if (base::SteadyMs() < next_attempt_ms_) {
      throw DbUnavailable("postgres: the server is unreachable (reconnecting)");
    }
    Connect();
  }

  // Why a statement failed: an unreachable server, or this statement.
  [[noreturn]] void Fail(PGresult* res, const std::string& what) {
    std::string msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn_);
    const char* field = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    const std::string state = field != nullptr ? field : "";  // before the result is freed
    PQclear(res);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    // Class 08: connection exception; 57P01-03: the server shuts down.
    const bool gone =
        PQstatus(conn_) != CONNECTION_OK || state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0;
    if (gone) {
      Close();
      next_attempt_ms_ = base::SteadyMs() + kReconnectMs;
      throw DbUnavailable("postgres: connection lost (" + what + "): " + msg);
    }
    throw DbError("postgres: " + what + ": " + msg + (state.empty() ? "" : " [" + state + "]"));
  }

  void Exec(const char* sql) {
    Ensure();
    if (PQsendQuery(conn_, sql) != 1) Fail(nullptr, sql);
    PGresult* res = Collect(sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) Fail(res, sql);
    PQclear(res);
  }

  // The name of `sql` prepared on this connection (prepared now if new).
  const std::string& Prepared(const std::string& sql) {
    Ensure();
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
      std::string name = "s" + std::to_string(prepared_.size());
      if (PQsendPrepare(conn_, name.c_str(), sql.c_str(), 0, nullptr) != 1) {
        Fail(nullptr, "prepare");
      }
      PGresult* res = Collect("prepare");
      if (res == nullptr || PQresultStatus(res) != PGRES_COMMAND_OK) Fail(res, "prepare");
      PQclear(res);
      it = prepared_.emplace(sql, std::move(name)).first;
    }
    return it->second;
  }

  // Runs a statement, prepared once per connection under a name of its own.
  Result Run(const std::string& sql, const Params& p) {
    const std::string& name = Prepared(sql);
    std::vector<const char*> vals = p.Pointers();
    if (PQsendQueryPrepared(conn_, name.c_str(), p.size(), vals.data(), nullptr, nullptr, 0) != 1) {
      Fail(nullptr, "statement");
    }
    PGresult* res = Collect("statement");
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) Fail(res, "statement");
    return Result(res);
  }

  // Applies the versions the database lacks, one transaction each, under a
  // session advisory lock: a second node starting at once waits, then finds
  // them applied.
  void Migrate() {
    Exec(("SELECT pg_advisory_lock(" + std::to_string(kMigrationLock) + ")").c_str());
    struct Unlock {
      PostgresDb* db;
      ~Unlock() {
        if (db->conn_ != nullptr) {
          try {
            db->Exec(("SELECT pg_advisory_unlock(" + std::to_string(kMigrationLock) + ")").c_str());
          } catch (const DbError&) {  // lost: the session's lock went with it
          }
        }
      }
    } unlock{this};
    Exec(
        "CREATE TABLE IF NOT EXISTS onlined_schema(version int PRIMARY KEY,"
        " applied_at timestamptz NOT NULL DEFAULT now())");
    Result r = Run("SELECT COALESCE(MAX(version), 0) FROM onlined_schema", Params());
    const int64_t have = r.Int(0, 0);
    if (have > kSchemaVersion) {
      throw DbError("postgres: the database has schema version " + std::to_string(have) +
                    ", newer than this onlined knows (" + std::to_string(kSchemaVersion) +
                    "); run a newer onlined");
    }
    for (int64_t v = have; v < kSchemaVersion; ++v) {
      Exec("BEGIN");
      try {
        Exec(kMigrations[v]);
        Run("INSERT INTO onlined_schema(version) VALUES($1)", Params().I(v + 1));
        Exec("COMMIT");
      } catch (...) {
        Rollback();
        throw;
      }
    }
  }

  static constexpr const char* kAppendSql =
      "SELECT * FROM onlined_append($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)";
  static Params AppendParams(const AppendInput& in) {
    Params p;
    p.S(in.channel).S(in.chat_id).S(in.user_id).S(in.from).S(in.sender_id).S(in.text);
    p.S(in.idem_scope).S(in.idem_key).S(in.body_hash).S(in.message_id).S(in.new_chat_id);
    p.I(in.now).I(in.sms_due_at);
    return p;
  }
  static AppendResult ReadAppend(const Result& r) {
    if (r.rows() != 1) throw DbError("postgres: onlined_append returned no row");
    AppendResult out;
    const std::string status = r.Text(0, 0);
    if (status == "conflict") {
      out.status = AppendStatus::kConflict;
      return out;
    }
    if (status == "no_chat") {
      out.status = AppendStatus::kNoChat;
      return out;
    }
    out.status = status == "duplicate" ? AppendStatus::kDuplicate : AppendStatus::kCreated;
    out.message = ReadMessage(r, 0, 1);
    out.user_id = r.Text(0, 9);
    out.chat_created = !r.IsNull(0, 10) && r.Bool(0, 10);
    out.notification_id = r.IsNull(0, 11) ? 0 : r.Int(0, 11);
    return out;
  }

  static std::string ChatSelect() {
    return "SELECT c.chat_id, c.channel, c.user_id, c.created_at, c.last_seq, c.updated_at,"
           " c.user_ack_seq, c.user_read_seq, c.unread, m.chat_id, m.seq, m.id, m.from_role,"
           " m.sender_id, m.text, m.created_at, m.acked_at, u.name"
           " FROM chats c LEFT JOIN messages m ON m.chat_id=c.chat_id AND m.seq=c.last_seq"
           " LEFT JOIN users u ON u.channel=c.channel AND u.user_id=c.user_id";
  }
  static Chat ReadChat(const Result& r, int row) {
    Chat c;
    c.chat_id = r.Text(row, 0);
    c.channel = r.Text(row, 1);
    c.user_id = r.Text(row, 2);
    c.created_at = r.Int(row, 3);
    c.last_seq = r.Int(row, 4);
    c.updated_at = r.Int(row, 5);
    c.user_ack_seq = r.Int(row, 6);
    c.user_read_seq = r.Int(row, 7);
    c.unread = r.Int(row, 8);
    if (!r.IsNull(row, 9)) c.last_message = ReadMessage(r, row, 9);
    if (!r.IsNull(row, 17)) c.user_name = r.Text(row, 17);
    return c;
  }
  static std::string MessageSelect() {
    return "SELECT chat_id, seq, id, from_role, sender_id, text, created_at, acked_at FROM"
           " messages";
  }
  static Message ReadMessage(const Result& r, int row, int b) {
    Message m;
    m.chat_id = r.Text(row, b);
    m.seq = r.Int(row, b + 1);
    m.id = r.Text(row, b + 2);
    m.from = r.Text(row, b + 3);
    m.sender_id = r.Text(row, b + 4);
    m.text = r.Text(row, b + 5);
    m.created_at = r.Int(row, b + 6);
    if (!r.IsNull(row, b + 7)) m.acked_at = r.Int(row, b + 7);
    return m;
  }
  static std::string NotificationSelect() {
    return "SELECT id, channel, user_id, chat_id, first_seq, last_seq, state, reason, due_at,"
           " attempts, provider_sid, provider_status, phone, body, created_at, updated_at,"
           " claimed_by, lease_until FROM notifications";
  }
  static Notification ReadNotification(const Result& r, int row) {
    Notification n;
    n.id = r.Int(row, 0);
    n.channel = r.Text(row, 1);
    n.user_id = r.Text(row, 2);
    n.chat_id = r.Text(row, 3);
    n.first_seq = r.Int(row, 4);
    n.last_seq = r.Int(row, 5);
    ParseNotifyState(r.Text(row, 6), n.state);
    n.reason = r.Text(row, 7);
    n.due_at = r.Int(row, 8);
    n.attempts = static_cast<int>(r.Int(row, 9));
    n.provider_sid = r.Text(row, 10);
    n.provider_status = r.Text(row, 11);
    n.phone = r.Text(row, 12);
    n.body = r.Text(row, 13);
    n.created_at = r.Int(row, 14);
    n.updated_at = r.Int(row, 15);
    n.claimed_by = r.Text(row, 16);
    n.lease_until = r.Int(row, 17);
    return n;
  }

  std::string url_;
  bool writer_;
  int64_t timeout_ms_;  // per answer awaited; 0: none
  PGconn* conn_ = nullptr;
  int64_t next_attempt_ms_ = 0;
  std::unordered_map<std::string, std::string> prepared_;  // SQL -> statement name
};

}  // namespace

int PostgresSchemaVersion() { return kSchemaVersion; }

std::unique_ptr<Db> OpenPostgres(const std::string& url, bool writer, int64_t timeout_ms) {
  return std::make_unique<PostgresDb>(url, writer, timeout_ms);
}

}  // namespace onlined::store
