#include "store/sqlite/sqlite_db.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "store/sqlite/vfs.h"

namespace onlined::store {

namespace {

// Schema versions, in order; PRAGMA user_version says which are applied.
// Version 1 is the first released schema (IF NOT EXISTS: files made before
// versions were counted are version 0 with version 1's tables).
constexpr const char* kV1 = R"sql(
CREATE TABLE IF NOT EXISTS chats(
  chat_id TEXT PRIMARY KEY, channel TEXT NOT NULL, user_id TEXT NOT NULL,
  created_at INTEGER NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL,
  user_ack_seq INTEGER NOT NULL DEFAULT 0, user_read_seq INTEGER NOT NULL DEFAULT 0,
  unread INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chats_newest ON chats(channel, updated_at DESC, chat_id DESC);
CREATE UNIQUE INDEX IF NOT EXISTS chats_of_user ON chats(channel, user_id);
CREATE TABLE IF NOT EXISTS messages(
  chat_id TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, from_role TEXT NOT NULL,
  sender_id TEXT NOT NULL, text TEXT NOT NULL, created_at INTEGER NOT NULL, acked_at INTEGER,
  PRIMARY KEY(chat_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idem(
  channel TEXT NOT NULL, scope TEXT NOT NULL, key TEXT NOT NULL, chat_id TEXT NOT NULL,
  seq INTEGER NOT NULL, body_hash TEXT NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY(channel, scope, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users(
  channel TEXT NOT NULL, user_id TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', phone TEXT NOT NULL DEFAULT '',
  sms_opt_in INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL,
  PRIMARY KEY(channel, user_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS users_by_phone ON users(phone);
CREATE TABLE IF NOT EXISTS notifications(
  id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, user_id TEXT NOT NULL, chat_id TEXT NOT NULL,
  first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
  due_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, provider_sid TEXT NOT NULL DEFAULT '',
  provider_status TEXT NOT NULL DEFAULT '', phone TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications(state, due_at);
CREATE INDEX IF NOT EXISTS notifications_chat ON notifications(chat_id, state);
CREATE INDEX IF NOT EXISTS notifications_user ON notifications(channel, user_id, id DESC);
CREATE INDEX IF NOT EXISTS notifications_sid ON notifications(provider_sid);
CREATE TABLE IF NOT EXISTS inbound_sms(sid TEXT PRIMARY KEY, received_at INTEGER NOT NULL) WITHOUT ROWID;
)sql";
// Version 2: outbox claims carry their owner and lease (store/db.h ClaimDue).
constexpr const char* kV2 = R"sql(
ALTER TABLE notifications ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
)sql";
// Version 3: revoked subjects (Db::PutRevocation).
constexpr const char* kV3 = R"sql(
CREATE TABLE IF NOT EXISTS revocations(
  channel TEXT NOT NULL, role TEXT NOT NULL, subject TEXT NOT NULL,
  revoked_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
  PRIMARY KEY(channel, role, subject)) WITHOUT ROWID;
)sql";
// Version 4: the notification a chat's manager sends join (its newest, while
// it waits for its time, as on PostgreSQL), named in the chat's row with the
// last_seq and updated_at a join would have written to its own row. A send
// then writes the chat's row, which it writes anyway, and not a row of
// notifications too: one page fewer in each commit's WAL frames. The
// notification's row takes these values when sends stop joining it
// (OpenNotification).
constexpr const char* kV4 = R"sql(
ALTER TABLE chats ADD COLUMN open_notification INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN open_last_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN open_updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE chats SET open_notification=n.id, open_last_seq=n.last_seq, open_updated_at=n.updated_at
  FROM (SELECT id, chat_id, last_seq, updated_at FROM notifications WHERE state='scheduled' AND
        id IN (SELECT MAX(id) FROM notifications GROUP BY chat_id)) AS n
  WHERE chats.chat_id=n.chat_id;
)sql";
constexpr const char* kMigrations[] = {kV1, kV2, kV3, kV4};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

// The text of a statement that is a literal (consteval: nothing built at run
// time converts to it), so that its address can key the prepared statement.
struct Sql {
  consteval Sql(const char* t) : text(t) {}  // NOLINT(google-explicit-constructor)
  const char* text;
};

// A prepared statement, reset after each use.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt& Bind(int i, const std::string& v) {
    Check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    Check(sqlite3_bind_int64(s_, i, v));
    return *this;
  }
  Stmt& BindNull(int i) {
    Check(sqlite3_bind_null(s_, i));
    return *this;
  }
  // Steps once; true if a row is available.
  bool Step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw DbError(std::string("sqlite: ") + sqlite3_errmsg(db_));
  }
  void Run() {
    while (Step()) {
    }
  }
  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p == nullptr ? std::string()
                        : std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, col)));
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK) throw DbError(std::string("sqlite bind: ") + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* s_;
};

std::atomic<uint64_t> checkpoints_done{0};

// Copies the WAL back into the database file on a thread and a connection
// of its own, so that no commit waits for it. SQLite's automatic checkpoint
// runs inside the COMMIT that crosses wal_autocheckpoint pages: that commit,
// and every send grouped in it, waited for the pages' copy and the database
// file's fsync (one commit in ~20 at 1,000 sends/s: the latency's p99). A
// passive checkpoint takes no lock the writer needs. Its copies are synced
// in pieces as they are written (vfs.h: PaceCheckpoints) while the WAL is
// under half its most; past that it has fallen behind and copies at full speed.
//
// It copies in chunks of kDueFrames new frames: a page written by several
// commits of a chunk is copied once, and a chunk costs one pair of fsyncs.
// (Woken after every commit once the WAL held kDueFrames, it copied each
// commit's frames alone, with its own fsyncs: under sustained writes the WAL
// is never wholly copied when the writer begins, so it was never reused from
// its start and stayed past the mark.) The WAL is reused from its start only
// when the writer begins a transaction with every frame copied. Under
// sustained writes that takes a checkpoint between a commit and the next, so
// past kCatchUpFrames the checkpointer is woken after every commit (it then
// lags one commit), and at kWriterFrames the writer copies that lag itself:
// the WAL stays under kWriterFrames pages plus the commits made while a copy
// of this thread's in progress ends (the writer's checkpoint is passive: it
// yields to that copy and is tried again at the next commit). A read that
// holds an old snapshot keeps the WAL from being copied past it and reused:
// then it grows, shown by onlined_store_wal_pages and warned of at each
// doubling past its most.
class Checkpointer {
 public:
  static constexpr int kDueFrames = kSqliteCheckpointPages;  // wal_autocheckpoint's default
  static constexpr int kWriterFrames = kSqliteWalMaxPages;
  static constexpr int kCatchUpFrames = kWriterFrames - kDueFrames;
  static constexpr int kUnpacedFrames = kWriterFrames / 2;

  Checkpointer(const std::string& path, const char* vfs) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs) !=
        SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw DbError("sqlite: cannot open " + path + " to checkpoint: " + msg);
    }
    sqlite3_busy_timeout(db_, 1000);
    // A connection that has read nothing has not opened the WAL, and a
    // checkpoint through it would copy nothing: read once first.
    if (sqlite3_exec(db_, "PRAGMA synchronous=FULL; SELECT 1 FROM sqlite_schema LIMIT 1", nullptr,
                     nullptr, nullptr) != SQLITE_OK) {
      std::string msg = sqlite3_errmsg(db_);
      sqlite3_close(db_);
      throw DbError("sqlite: cannot read " + path + " to checkpoint: " + msg);
    }
    // Its copies reach the disk in pieces (vfs.h), so that a commit's WAL
    // fsync never waits behind a whole copy.
    paced_ = PaceCheckpoints(db_, true);
    if (!paced_) spdlog::warn("store: the checkpoints' writes are not paced");
    try {
      thread_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "store-ckpt");
        Run();
      });
    } catch (...) {
      sqlite3_close(db_);
      throw;
    }
  }
  ~Checkpointer() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
    sqlite3_close(db_);
  }
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // The writer's WAL hook (after each commit; the writer's thread). `frames`
  // is the WAL's length in pages after this commit.
  static int OnCommit(void* self, sqlite3* writer, const char* name, int frames) {
    static_cast<Checkpointer*>(self)->Committed(writer, name, frames);
    return SQLITE_OK;
  }

  // The WAL's length in pages after the last commit (the writer's thread).
  int wal_pages() const { return wal_pages_; }

 private:
  // The writer's thread only.
  void Committed(sqlite3* writer, const char* name, int frames) {
    wal_pages_ = frames;
    // Shorter than at the last wake-up: the WAL was reused from its start.
    if (frames < next_due_ - kDueFrames) {
      next_due_ = kDueFrames;
      warn_at_ = 2 * kWriterFrames;
      writer_failed_ = false;
    }
    if (frames >= warn_at_) {
      spdlog::warn(
          "store: the WAL holds {} pages (its most is {}): a long read or failing "
          "checkpoints keep it from being reused",
          frames, kWriterFrames);
      warn_at_ = 2 * int64_t{frames};
    }
    // Checkpoints stopped (a sync of the database file failed, vfs.h): each
    // would copy the whole WAL into the file again only for its sync to fail.
    if (DatabaseSyncFailed()) return;
    if (frames >= kWriterFrames) {
      const int rc =
          sqlite3_wal_checkpoint_v2(writer, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY && !writer_failed_) {
        writer_failed_ = true;  // once until the WAL is reused: it is tried at every commit
        spdlog::warn("store: the writer's checkpoint failed: {}", sqlite3_errmsg(writer));
      }
    } else if (frames >= next_due_ || frames >= kCatchUpFrames) {
      next_due_ = frames + kDueFrames;
      Due(frames);
    }
  }

  void Due(int frames) {
    {
      std::lock_guard lock(mu_);
      due_ = true;
      due_frames_ = frames;
    }
    cv_.notify_one();
  }

  void Run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return due_ || stop_; });
      if (stop_) return;
      due_ = false;
      if (DatabaseSyncFailed()) continue;  // stopped until a restart (vfs.h)
      const int frames = due_frames_;
      lock.unlock();
      // Behind (the WAL half its most): copy as fast as the disk takes it,
      // one sync at the end; the pieces are for a checkpointer that keeps up.
      const bool pace = frames < kUnpacedFrames;
      if (pace != paced_ && PaceCheckpoints(db_, pace)) paced_ = pace;
      int log = 0, copied = 0;
      const int rc =
          sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
      if (rc == SQLITE_OK) {
        // `copied` counts from the WAL's start: a checkpoint that copied
        // nothing new (a read holds the rest) is not counted.
        if (log < last_log_) last_copied_ = 0;
        if (copied > last_copied_) checkpoints_done.fetch_add(1, std::memory_order_relaxed);
        last_log_ = log;
        last_copied_ = copied;
      } else if (rc != SQLITE_BUSY) {
        // Nothing is lost (the WAL keeps every commit): the next wake-up,
        // kDueFrames later, or the writer's own at kWriterFrames tries again.
        spdlog::warn("store: checkpoint failed: {}", sqlite3_errmsg(db_));
      }
      lock.lock();
    }
  }

  sqlite3* db_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  bool due_ = false;
  int due_frames_ = 0;  // the WAL's length when woken
  bool stop_ = false;
  std::thread thread_;
  // The writer's thread: the WAL's length that wakes this thread next, the
  // one that is warned of next, its length after the last commit, whether
  // the writer's own checkpoint failed since the WAL was last reused.
  int next_due_ = kDueFrames;
  int64_t warn_at_ = 2 * kWriterFrames;
  int wal_pages_ = 0;
  bool writer_failed_ = false;
  // This thread's: the WAL's length and the frames copied at its last
  // checkpoint; whether its copies are synced in pieces.
  int last_log_ = 0;
  int last_copied_ = 0;
  bool paced_ = false;
};

class SqliteDb final : public Db {
 public:
  SqliteDb(const std::string& path, bool writer, const char* vfs) : writer_(writer) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path.c_str(), &db_, flags, vfs) != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw DbError("sqlite: cannot open " + path + ": " + msg);
    }
    sqlite3_busy_timeout(db_, 5000);
    try {
      Exec("PRAGMA journal_mode=WAL");
      Exec("PRAGMA synchronous=FULL");
      Exec("PRAGMA foreign_keys=OFF");
      Exec("PRAGMA cache_size=-65536");  // 64 MiB per connection
      if (writer) {
        Migrate(path);
        // A commit's WAL frames 64 KiB at a time (vfs.h); it needs the
        // synchronous=FULL above, which syncs the WAL at every commit.
        if (!CoalesceWalWrites(db_, true))
          spdlog::warn("store: the WAL's writes are not coalesced");
        // Replaces SQLite's automatic checkpoint (see Checkpointer).
        checkpointer_ = std::make_unique<Checkpointer>(path, vfs);
        sqlite3_wal_hook(db_, &Checkpointer::OnCommit, checkpointer_.get());
      }
    } catch (...) {
      checkpointer_.reset();
      FinalizeAll();
      sqlite3_close(db_);  // no destructor runs for a constructor that throws
      throw;
    }
  }
  ~SqliteDb() override {
    sqlite3_wal_hook(db_, nullptr, nullptr);
    checkpointer_.reset();
    FinalizeAll();
    sqlite3_close(db_);  // the last connection: checkpoints and removes the WAL
  }

  int64_t WalPages() const override { return checkpointer_ ? checkpointer_->wal_pages() : 0; }
  bool CheckpointsStopped() const override { return DatabaseSyncFailed(); }

  // The writer takes the write lock up front; readers read a snapshot.
  void Begin() override {
    if (writer_) {
      Prepare("BEGIN IMMEDIATE").Run();
    } else {
      Prepare("BEGIN").Run();
    }
  }
  void Commit() override { Prepare("COMMIT").Run(); }
  void Rollback() override {
    if (!sqlite3_get_autocommit(db_)) Exec("ROLLBACK");
  }
  void Savepoint() override { Prepare("SAVEPOINT op").Run(); }
  void ReleaseSavepoint() override { Prepare("RELEASE op").Run(); }
  void RollbackToSavepoint() override {
    Exec("ROLLBACK TO op");
    Exec("RELEASE op");
  }

  std::optional<Chat> GetChat(const std::string& channel, const std::string& chat_id) override {
    Stmt s = PrepareBuilt(ChatSelect() + " WHERE c.chat_id=?1 AND c.channel=?2");
    s.Bind(1, chat_id).Bind(2, channel);
    if (!s.Step()) return std::nullopt;
    return ReadChat(s);
  }

  std::optional<Chat> FindChatOfUser(const std::string& channel,
                                     const std::string& user_id) override {
    Stmt s = PrepareBuilt(ChatSelect() + " WHERE c.channel=?1 AND c.user_id=?2");
    s.Bind(1, channel).Bind(2, user_id);
    if (!s.Step()) return std::nullopt;
    return ReadChat(s);
  }

  bool InsertChat(const Chat& c) override {
    Stmt s = Prepare(
        "INSERT INTO chats(chat_id, channel, user_id, created_at, last_seq, updated_at) "
        "VALUES(?1,?2,?3,?4,0,?4) ON CONFLICT(channel, user_id) DO NOTHING");
    s.Bind(1, c.chat_id).Bind(2, c.channel).Bind(3, c.user_id).Bind(4, c.created_at).Run();
    return sqlite3_changes(db_) == 1;
  }

  // One writer holds the file's lock for the whole group: the steps need no
  // row locks here (PostgreSQL does the same in one function, postgres_db.cc).
  AppendResult Append(const AppendInput& in) override {
    AppendResult r;
    if (!in.idem_key.empty()) {
      if (auto e = GetIdem(in.channel, in.idem_scope, in.idem_key)) {
        if (e->body_hash != in.body_hash) {
          r.status = AppendStatus::kConflict;
          return r;
        }
        auto m = GetMessage(e->chat_id, e->seq);
        auto chat = GetChat(in.channel, e->chat_id);
        if (!m || !chat) throw DbError("idempotency key points at a missing message");
        r.status = AppendStatus::kDuplicate;
        r.message = std::move(*m);
        r.user_id = chat->user_id;
        return r;
      }
    }
    std::optional<ChatHead> chat;
    if (!in.chat_id.empty()) {
      chat = ChatHeadById(in.channel, in.chat_id);
      if (!chat || (in.from == "user" && chat->user_id != in.user_id)) {
        r.status = AppendStatus::kNoChat;
        return r;
      }
    } else if (in.from == "user") {
      chat = ChatHeadOfUser(in.channel, in.user_id);
      if (!chat) {
        Chat c;
        c.chat_id = in.new_chat_id;
        c.channel = in.channel;
        c.user_id = in.user_id;
        c.created_at = c.updated_at = in.now;
        InsertChat(c);
        chat = ChatHead{std::move(c.chat_id), std::move(c.user_id), 0, 0};
        r.chat_created = true;
      }
    } else {
      r.status = AppendStatus::kNoChat;
      return r;
    }
    Message& m = r.message;
    m.id = in.message_id;
    m.chat_id = chat->chat_id;
    m.seq = chat->last_seq + 1;
    m.from = in.from;
    m.sender_id = in.sender_id;
    m.text = in.text;
    m.created_at = in.now;
    InsertMessage(m);
    UpdateChat(m.chat_id, m.seq, m.created_at, in.from == "user",
               in.sms_due_at > 0 && chat->open_notification != 0);
    if (!in.idem_key.empty()) PutIdem(in, m);
    r.user_id = chat->user_id;
    if (in.sms_due_at > 0) {
      if (chat->open_notification != 0) {
        // Joined the waiting notification (UpdateChat): one SMS
        // tells of all of them.
        r.notification_id = chat->open_notification;
      } else {
        Notification n;
        n.channel = in.channel;
        n.user_id = chat->user_id;
        n.chat_id = m.chat_id;
        n.first_seq = n.last_seq = m.seq;
        n.state = NotifyState::kScheduled;
        n.reason = "waiting";
        n.due_at = in.sms_due_at;
        n.created_at = n.updated_at = in.now;
        r.notification_id = InsertNotification(n);
      }
    }
    return r;
  }

  std::vector<Chat> ListChats(const std::string& channel,
                              std::optional<std::pair<int64_t, std::string>> before,
                              int limit) override {
    std::vector<Chat> out;
    if (before) {
      Stmt s = PrepareBuilt(ChatSelect() +
                            " WHERE c.channel=?1 AND (c.updated_at, c.chat_id) < (?2, ?3)"
                            " ORDER BY c.updated_at DESC, c.chat_id DESC LIMIT ?4");
      s.Bind(1, channel).Bind(2, before->first).Bind(3, before->second).Bind(4, limit);
      while (s.Step()) out.push_back(ReadChat(s));
    } else {
      Stmt s = PrepareBuilt(
          ChatSelect() + " WHERE c.channel=?1 ORDER BY c.updated_at DESC, c.chat_id DESC LIMIT ?2");
      s.Bind(1, channel).Bind(2, limit);
      while (s.Step()) out.push_back(ReadChat(s));
    }
    return out;
  }

  std::vector<Chat> ChatsOfUser(const std::string& channel, const std::string& user_id,
                                int limit) override {
    std::vector<Chat> out;
    Stmt s = PrepareBuilt(
        ChatSelect() + " WHERE c.channel=?1 AND c.user_id=?2 ORDER BY c.updated_at DESC LIMIT ?3");
    s.Bind(1, channel).Bind(2, user_id).Bind(3, limit);
    while (s.Step()) out.push_back(ReadChat(s));
    return out;
  }

  void UpdateChatAfterMessage(const std::string& chat_id, int64_t seq, int64_t at,
                              bool from_user) override {
    UpdateChat(chat_id, seq, at, from_user, false);
  }

  int64_t RaiseUserAck(const std::string& chat_id, int64_t seq, int64_t at) override {
    int64_t before = 0;
    {
      Stmt s = Prepare("SELECT user_ack_seq FROM chats WHERE chat_id=?1");
      s.Bind(1, chat_id);
      if (!s.Step()) return 0;
      before = s.Int(0);
    }
    if (seq <= before) return before;
    {
      Stmt s = Prepare(
          "UPDATE chats SET user_ack_seq=?2 WHERE chat_id=?1 AND user_ack_seq<?2 AND last_seq>=?2");
      s.Bind(1, chat_id).Bind(2, seq).Run();
      if (sqlite3_changes(db_) == 0) return before;  // beyond the chat's last message
    }
    // Only the messages the mark passes now: those at or below `before`
    // have their time already (db.h), and a chat's history may be long.
    Stmt s = Prepare(
        "UPDATE messages SET acked_at=?4"
        " WHERE chat_id=?1 AND seq>?2 AND seq<=?3 AND acked_at IS NULL");
    s.Bind(1, chat_id).Bind(2, before).Bind(3, seq).Bind(4, at).Run();
    return seq;
  }

  int64_t RaiseUserRead(const std::string& chat_id, int64_t seq) override {
    {
      Stmt s = Prepare(
          "UPDATE chats SET user_read_seq=?2"
          " WHERE chat_id=?1 AND user_read_seq<?2 AND last_seq>=?2");
      s.Bind(1, chat_id).Bind(2, seq).Run();
    }
    Stmt s = Prepare("SELECT user_read_seq FROM chats WHERE chat_id=?1");
    s.Bind(1, chat_id);
    return s.Step() ? s.Int(0) : 0;
  }

  void InsertMessage(const Message& m) override {
    Stmt s = Prepare(
        "INSERT INTO messages(chat_id, seq, id, from_role, sender_id, text, created_at) "
        "VALUES(?1,?2,?3,?4,?5,?6,?7)");
    s.Bind(1, m.chat_id)
        .Bind(2, m.seq)
        .Bind(3, m.id)
        .Bind(4, m.from)
        .Bind(5, m.sender_id)
        .Bind(6, m.text);
    s.Bind(7, m.created_at).Run();
  }

  std::vector<Message> ListMessages(const std::string& chat_id, int64_t after_seq,
                                    int limit) override {
    std::vector<Message> out;
    Stmt s = PrepareBuilt(MessageSelect() + " WHERE chat_id=?1 AND seq>?2 ORDER BY seq LIMIT ?3");
    s.Bind(1, chat_id).Bind(2, after_seq).Bind(3, limit);
    while (s.Step()) out.push_back(ReadMessage(s, 0));
    return out;
  }

  std::optional<Message> GetMessage(const std::string& chat_id, int64_t seq) override {
    Stmt s = PrepareBuilt(MessageSelect() + " WHERE chat_id=?1 AND seq=?2");
    s.Bind(1, chat_id).Bind(2, seq);
    if (!s.Step()) return std::nullopt;
    return ReadMessage(s, 0);
  }

  std::optional<UserProfile> GetUser(const std::string& channel,
                                     const std::string& user_id) override {
    Stmt s = Prepare(
        "SELECT name, phone, sms_opt_in, updated_at FROM users WHERE channel=?1 AND user_id=?2");
    s.Bind(1, channel).Bind(2, user_id);
    if (!s.Step()) return std::nullopt;
    return UserProfile{channel, user_id, s.Text(0), s.Text(1), s.Int(2) != 0, s.Int(3)};
  }

  void PutUser(const UserProfile& u) override {
    Stmt s = Prepare(
        "INSERT INTO users(channel, user_id, name, phone, sms_opt_in, updated_at) "
        "VALUES(?1,?2,?3,?4,?5,?6)"
        " ON CONFLICT(channel, user_id) DO UPDATE SET name=?3, phone=?4, sms_opt_in=?5, "
        "updated_at=?6");
    s.Bind(1, u.channel).Bind(2, u.user_id).Bind(3, u.name).Bind(4, u.phone);
    s.Bind(5, int64_t{u.sms_opt_in ? 1 : 0}).Bind(6, u.updated_at).Run();
  }

  int SetOptInByPhone(const std::string& phone, bool opt_in, int64_t at) override {
    Stmt s =
        Prepare("UPDATE users SET sms_opt_in=?2, updated_at=?3 WHERE phone=?1 AND sms_opt_in<>?2");
    s.Bind(1, phone).Bind(2, int64_t{opt_in ? 1 : 0}).Bind(3, at).Run();
    return sqlite3_changes(db_);
  }

  bool RecordInboundSms(const std::string& sid, int64_t at) override {
    Stmt s = Prepare(
        "INSERT INTO inbound_sms(sid, received_at) VALUES(?1,?2) ON CONFLICT(sid) DO NOTHING");
    s.Bind(1, sid).Bind(2, at).Run();
    return sqlite3_changes(db_) == 1;
  }

  void PutRevocation(const Revocation& r, int64_t now) override {
    Stmt s = Prepare(
        "INSERT INTO revocations(channel, role, subject, revoked_at, expires_at) "
        "VALUES(?1,?2,?3,?4,?5) ON CONFLICT(channel, role, subject) DO UPDATE SET "
        "revoked_at=excluded.revoked_at, expires_at=excluded.expires_at "
        "WHERE excluded.revoked_at > revocations.revoked_at");
    s.Bind(1, r.channel)
        .Bind(2, r.role)
        .Bind(3, r.subject)
        .Bind(4, r.revoked_at)
        .Bind(5, r.expires_at)
        .Run();
    Stmt d = Prepare("DELETE FROM revocations WHERE expires_at > 0 AND expires_at <= ?1");
    d.Bind(1, now).Run();
  }

  std::vector<Revocation> Revocations(int64_t now) override {
    Stmt s = Prepare(
        "SELECT channel, role, subject, revoked_at, expires_at FROM revocations "
        "WHERE expires_at = 0 OR expires_at > ?1");
    s.Bind(1, now);
    std::vector<Revocation> out;
    while (s.Step()) out.push_back({s.Text(0), s.Text(1), s.Text(2), s.Int(3), s.Int(4)});
    return out;
  }

  int64_t InsertNotification(const Notification& n) override {
    Stmt s = Prepare(
        "INSERT INTO notifications(channel, user_id, chat_id, first_seq, last_seq, state, reason, "
        "due_at, attempts,"
        " created_at, updated_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?10)");
    s.Bind(1, n.channel)
        .Bind(2, n.user_id)
        .Bind(3, n.chat_id)
        .Bind(4, n.first_seq)
        .Bind(5, n.last_seq);
    s.Bind(6, std::string(NotifyStateName(n.state))).Bind(7, n.reason).Bind(8, n.due_at);
    s.Bind(9, int64_t{n.attempts}).Bind(10, n.created_at).Run();
    const int64_t id = sqlite3_last_insert_rowid(db_);
    OpenNotification(n.chat_id, id);
    return id;
  }

  void UpdateNotification(const Notification& n) override {
    Stmt s = Prepare(
        "UPDATE notifications SET first_seq=?2, last_seq=?3, state=?4, reason=?5, due_at=?6, "
        "attempts=?7,"
        " provider_sid=?8, provider_status=?9, phone=?10, body=?11, updated_at=?12, claimed_by=?13,"
        " lease_until=?14 WHERE id=?1");
    s.Bind(1, n.id)
        .Bind(2, n.first_seq)
        .Bind(3, n.last_seq)
        .Bind(4, std::string(NotifyStateName(n.state)));
    s.Bind(5, n.reason).Bind(6, n.due_at).Bind(7, int64_t{n.attempts}).Bind(8, n.provider_sid);
    s.Bind(9, n.provider_status).Bind(10, n.phone).Bind(11, n.body).Bind(12, n.updated_at);
    s.Bind(13, n.claimed_by).Bind(14, n.lease_until).Run();
    OpenNotification(n.chat_id, n.id);
  }

  std::optional<Notification> GetNotification(int64_t id) override {
    Stmt s = PrepareBuilt(NotificationSelect() + " WHERE n.id=?1");
    s.Bind(1, id);
    if (!s.Step()) return std::nullopt;
    return ReadNotification(s);
  }

  std::optional<Notification> NotificationBySid(const std::string& sid) override {
    Stmt s = PrepareBuilt(NotificationSelect() + " WHERE n.provider_sid=?1 LIMIT 1");
    s.Bind(1, sid);
    if (!s.Step()) return std::nullopt;
    return ReadNotification(s);
  }

  bool AnyDue(int64_t now) override {
    Stmt s = Prepare(
        "SELECT 1 FROM notifications WHERE (state='scheduled' AND due_at<=?1)"
        " OR (state='sending' AND lease_until<=?1) LIMIT 1");
    s.Bind(1, now);
    return s.Step();
  }

  // The writer's lock on the file is the claim: one process per file.
  std::vector<Notification> ClaimDue(int64_t now, int limit) override {
    std::vector<Notification> out;
    Stmt s = PrepareBuilt(NotificationSelect() +
                          " WHERE (n.state='scheduled' AND n.due_at<=?1) OR (n.state='sending' AND "
                          "n.lease_until<=?1) ORDER BY n.due_at LIMIT ?2");
    s.Bind(1, now).Bind(2, limit);
    while (s.Step()) out.push_back(ReadNotification(s));
    return out;
  }

  std::vector<Notification> NotificationsOfUser(const std::string& channel,
                                                const std::string& user_id, int limit) override {
    std::vector<Notification> out;
    Stmt s = PrepareBuilt(NotificationSelect() +
                          " WHERE n.channel=?1 AND n.user_id=?2 ORDER BY n.id DESC LIMIT ?3");
    s.Bind(1, channel).Bind(2, user_id).Bind(3, limit);
    while (s.Step()) out.push_back(ReadNotification(s));
    return out;
  }

  std::optional<int64_t> LastSmsSentAt(const std::string& channel, const std::string& user_id,
                                       int64_t except_id) override {
    Stmt s = Prepare(
        "SELECT MAX(updated_at) FROM notifications WHERE channel=?1 AND user_id=?2 AND state IN "
        "('sent','sending') AND id<>?3");
    s.Bind(1, channel).Bind(2, user_id).Bind(3, except_id);
    if (!s.Step() || s.IsNull(0)) return std::nullopt;
    return s.Int(0);
  }

  int EndLeasesOf(const std::string& owner, int64_t now) override {
    Stmt s = Prepare(
        "UPDATE notifications SET lease_until=?2 WHERE state='sending' AND claimed_by=?1 AND "
        "lease_until>?2");
    s.Bind(1, owner).Bind(2, now).Run();
    return sqlite3_changes(db_);
  }

 private:
  // What a send needs of its chat (Append): not its last message nor its
  // user's name, which GetChat joins in.
  struct ChatHead {
    std::string chat_id;
    std::string user_id;
    int64_t last_seq = 0;
    // The waiting notification a manager's send joins: the one the chat's row
    // names, if it still waits (read, not trusted: a row changed by hand, or a
    // path that missed OpenNotification, then ends in a new one, not in sends
    // that schedule nothing).
    int64_t open_notification = 0;
  };
  std::optional<ChatHead> ChatHeadById(const std::string& channel, const std::string& chat_id) {
    Stmt s = Prepare(
        "SELECT c.user_id, c.last_seq, CASE WHEN n.state='scheduled' THEN n.id ELSE 0 END"
        " FROM chats AS c LEFT JOIN notifications AS n ON n.id=c.open_notification"
        " WHERE c.chat_id=?1 AND c.channel=?2");
    s.Bind(1, chat_id).Bind(2, channel);
    if (!s.Step()) return std::nullopt;
    return ChatHead{chat_id, s.Text(0), s.Int(1), s.Int(2)};
  }
  std::optional<ChatHead> ChatHeadOfUser(const std::string& channel, const std::string& user_id) {
    Stmt s = Prepare(
        "SELECT c.chat_id, c.last_seq, CASE WHEN n.state='scheduled' THEN n.id ELSE 0 END"
        " FROM chats AS c LEFT JOIN notifications AS n ON n.id=c.open_notification"
        " WHERE c.channel=?1 AND c.user_id=?2");
    s.Bind(1, channel).Bind(2, user_id);
    if (!s.Step()) return std::nullopt;
    return ChatHead{s.Text(0), user_id, s.Int(1), s.Int(2)};
  }
  // The chat after its message `seq`; a manager's message that `joins` the
  // chat's waiting notification writes what the join changes (its last_seq
  // and updated_at) in the same row: no page of notifications is written.
  void UpdateChat(const std::string& chat_id, int64_t seq, int64_t at, bool from_user, bool joins) {
    Stmt s = Prepare(
        "UPDATE chats SET last_seq=?2, updated_at=MAX(updated_at, ?3),"
        " unread=CASE WHEN ?4 THEN unread+1 ELSE 0 END,"
        " open_last_seq=CASE WHEN ?5 THEN ?2 ELSE open_last_seq END,"
        " open_updated_at=CASE WHEN ?5 THEN ?3 ELSE open_updated_at END WHERE chat_id=?1");
    s.Bind(1, chat_id).Bind(2, seq).Bind(3, at);
    s.Bind(4, int64_t{from_user ? 1 : 0}).Bind(5, int64_t{joins ? 1 : 0}).Run();
  }

  struct IdemEntry {
    std::string chat_id;
    int64_t seq = 0;
    std::string body_hash;
  };
  std::optional<IdemEntry> GetIdem(const std::string& channel, const std::string& scope,
                                   const std::string& key) {
    Stmt s = Prepare(
        "SELECT chat_id, seq, body_hash FROM idem WHERE channel=?1 AND scope=?2 AND key=?3");
    s.Bind(1, channel).Bind(2, scope).Bind(3, key);
    if (!s.Step()) return std::nullopt;
    return IdemEntry{s.Text(0), s.Int(1), s.Text(2)};
  }
  void PutIdem(const AppendInput& in, const Message& m) {
    Stmt s = Prepare(
        "INSERT INTO idem(channel, scope, key, chat_id, seq, body_hash, created_at) "
        "VALUES(?1,?2,?3,?4,?5,?6,?7)");
    s.Bind(1, in.channel).Bind(2, in.idem_scope).Bind(3, in.idem_key).Bind(4, m.chat_id);
    s.Bind(5, m.seq).Bind(6, in.body_hash).Bind(7, in.now).Run();
  }
  // Keeps the chat's row naming the notification its manager's sends join,
  // its newest if that one waits for its time (kV4), after `written` was
  // inserted or updated with the values its caller read through
  // NotificationSelect. The notification sends stop joining first takes the
  // values its joins left in the chat's row, unless it is `written` (whose
  // row has them now).
  void OpenNotification(const std::string& chat_id, int64_t written) {
    int64_t open = 0;
    {
      Stmt s = Prepare("SELECT open_notification FROM chats WHERE chat_id=?1");
      s.Bind(1, chat_id);
      if (!s.Step()) return;  // a notification without its chat: nothing to join
      open = s.Int(0);
    }
    int64_t newest = 0;
    {
      Stmt s = Prepare(
          "SELECT id, state='scheduled' FROM notifications WHERE chat_id=?1 "
          "ORDER BY id DESC LIMIT 1");
      s.Bind(1, chat_id);
      if (s.Step() && s.Int(1) != 0) newest = s.Int(0);
    }
    if (open == newest && open != written) return;  // the joins' values stay where they are
    if (open != 0 && open != written) {
      Stmt s = Prepare(
          "UPDATE notifications SET last_seq=MAX(notifications.last_seq, c.open_last_seq),"
          " updated_at=MAX(notifications.updated_at, c.open_updated_at)"
          " FROM chats AS c WHERE notifications.id=?2 AND c.chat_id=?1");
      s.Bind(1, chat_id).Bind(2, open).Run();
    }
    Stmt s = Prepare(
        "UPDATE chats SET open_notification=?2,"
        " open_last_seq=COALESCE((SELECT last_seq FROM notifications WHERE id=?2), 0),"
        " open_updated_at=COALESCE((SELECT updated_at FROM notifications WHERE id=?2), 0)"
        " WHERE chat_id=?1");
    s.Bind(1, chat_id).Bind(2, newest).Run();
  }

  // Applies the versions the file lacks, each in its own transaction.
  void Migrate(const std::string& path) {
    int have = 0;
    {
      Stmt s = Prepare("PRAGMA user_version");
      if (s.Step()) have = static_cast<int>(s.Int(0));
    }
    if (have > kSchemaVersion) {
      throw DbError("sqlite: " + path + " has schema version " + std::to_string(have) +
                    ", newer than this onlined knows (" + std::to_string(kSchemaVersion) +
                    "); run a newer onlined");
    }
    for (int v = have; v < kSchemaVersion; ++v) {
      Exec("BEGIN IMMEDIATE");
      try {
        Exec(kMigrations[v]);
        Exec(("PRAGMA user_version=" + std::to_string(v + 1)).c_str());
        Exec("COMMIT");
      } catch (...) {
        Exec("ROLLBACK");
        throw;
      }
    }
  }

  void Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown";
      sqlite3_free(err);
      throw DbError(std::string("sqlite: ") + msg);
    }
  }

  // A statement whose text is a literal: found by its address, no string
  // built or hashed (the writer prepares several per send).
  Stmt Prepare(Sql sql) {
    auto it = literal_stmts_.find(sql.text);
    if (it == literal_stmts_.end()) it = literal_stmts_.emplace(sql.text, Compile(sql.text)).first;
    return Stmt(db_, it->second);
  }
  // A statement whose text is built at run time (a shared column list and
  // its clauses), found by its text.
  Stmt PrepareBuilt(const std::string& sql) {
    auto it = stmts_.find(sql);
    if (it == stmts_.end()) it = stmts_.emplace(sql, Compile(sql.c_str())).first;
    return Stmt(db_, it->second);
  }
  sqlite3_stmt* Compile(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
      throw DbError(std::string("sqlite prepare: ") + sqlite3_errmsg(db_));
    }
    return s;
  }
  void FinalizeAll() {
    for (auto& [sql, st] : stmts_) sqlite3_finalize(st);
    for (auto& [sql, st] : literal_stmts_) sqlite3_finalize(st);
  }

  // A chat row, then its last message in ReadMessage's columns (from 9;
  // NULL when the chat has none), then the user's name.
  static std::string ChatSelect() {
    return "SELECT c.chat_id, c.channel, c.user_id, c.created_at, c.last_seq, c.updated_at, "
           "c.user_ack_seq,"
           " c.user_read_seq, c.unread, m.chat_id, m.seq, m.id, m.from_role, m.sender_id, m.text, "
           "m.created_at,"
           " m.acked_at, u.name"
           " FROM chats c LEFT JOIN messages m ON m.chat_id=c.chat_id AND m.seq=c.last_seq"
           " LEFT JOIN users u ON u.channel=c.channel AND u.user_id=c.user_id";
  }
  static Chat ReadChat(const Stmt& s) {
    Chat c;
    c.chat_id = s.Text(0);
    c.channel = s.Text(1);
    c.user_id = s.Text(2);
    c.created_at = s.Int(3);
    c.last_seq = s.Int(4);
    c.updated_at = s.Int(5);
    c.user_ack_seq = s.Int(6);
    c.user_read_seq = s.Int(7);
    c.unread = s.Int(8);
    if (!s.IsNull(9)) c.last_message = ReadMessage(s, 9);
    c.user_name = s.Text(17);
    return c;
  }
  static std::string MessageSelect() {
    return "SELECT chat_id, seq, id, from_role, sender_id, text, created_at, acked_at FROM "
           "messages";
  }
  static Message ReadMessage(const Stmt& s, int b) {
    Message m;
    m.chat_id = s.Text(b);
    m.seq = s.Int(b + 1);
    m.id = s.Text(b + 2);
    m.from = s.Text(b + 3);
    m.sender_id = s.Text(b + 4);
    m.text = s.Text(b + 5);
    m.created_at = s.Int(b + 6);
    if (!s.IsNull(b + 7)) m.acked_at = s.Int(b + 7);
    return m;
  }
  // A chat's waiting notification takes its last_seq and updated_at from the
  // chat's row, where its sends put them (kV4).
  static std::string NotificationSelect() {
    return "SELECT n.id, n.channel, n.user_id, n.chat_id, n.first_seq,"
           " CASE WHEN c.open_notification=n.id THEN c.open_last_seq ELSE n.last_seq END,"
           " n.state, n.reason, n.due_at, n.attempts, n.provider_sid, n.provider_status, n.phone,"
           " n.body, n.created_at,"
           " CASE WHEN c.open_notification=n.id THEN c.open_updated_at ELSE n.updated_at END,"
           " n.claimed_by, n.lease_until"
           " FROM notifications AS n LEFT JOIN chats AS c ON c.chat_id=n.chat_id";
  }
  static Notification ReadNotification(const Stmt& s) {
    Notification n;
    n.id = s.Int(0);
    n.channel = s.Text(1);
    n.user_id = s.Text(2);
    n.chat_id = s.Text(3);
    n.first_seq = s.Int(4);
    n.last_seq = s.Int(5);
    ParseNotifyState(s.Text(6), n.state);
    n.reason = s.Text(7);
    n.due_at = s.Int(8);
    n.attempts = static_cast<int>(s.Int(9));
    n.provider_sid = s.Text(10);
    n.provider_status = s.Text(11);
    n.phone = s.Text(12);
    n.body = s.Text(13);
    n.created_at = s.Int(14);
    n.updated_at = s.Int(15);
    n.claimed_by = s.Text(16);
    n.lease_until = s.Int(17);
    return n;
  }

  bool writer_;
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> stmts_;
  std::unordered_map<const char*, sqlite3_stmt*> literal_stmts_;
  std::unique_ptr<Checkpointer> checkpointer_;  // the writer's
};

}  // namespace

uint64_t SqliteCheckpoints() { return checkpoints_done.load(std::memory_order_relaxed); }

std::unique_ptr<Db> OpenSqlite(const std::string& dir, bool writer, bool fault_injection) {
  // No allocation statistics: SQLite would take a process-wide mutex around
  // every malloc and free for them (~4 % of the writer's instructions per
  // send). Only possible before SQLite initialises (its first open or VFS
  // registration); otherwise SQLite refuses and keeps them, which is harmless.
  static std::once_flag configured;
  std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw DbError("cannot create data_dir '" + dir + "': " + ec.message());
  return std::make_unique<SqliteDb>(dir + "/onlined.db", writer, VfsName(fault_injection));
}

}  // namespace onlined::store
