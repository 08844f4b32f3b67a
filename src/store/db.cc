#include "store/db.h"

namespace onlined::store {

bool Db::RunGroup(size_t n, const std::function<void(size_t)>& run,
                  std::vector<std::string>& errors, std::string& group_error) {
  errors.assign(n, std::string());
  try {
    Begin();
    for (size_t i = 0; i < n; ++i) {
      Savepoint();
      try {
        run(i);
        ReleaseSavepoint();
      } catch (const DbUnavailable&) {
        throw;  // the connection is gone: the group with it
      } catch (const std::exception& e) {
        errors[i] = e.what();
        RollbackToSavepoint();
      }
    }
    Commit();
    return true;
  } catch (const std::exception& e) {
    group_error = e.what();
    try {
      Rollback();
    } catch (...) {
    }
    return false;
  }
}

std::vector<AppendResult> Db::AppendMany(const std::vector<const AppendInput*>& in) {
  std::vector<AppendResult> out;
  out.reserve(in.size());
  for (const AppendInput* a : in) out.push_back(Append(*a));
  return out;
}

}  // namespace onlined::store
