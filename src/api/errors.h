#pragma once
// The contract's error table is proto/errors.h (net/ answers from it too);
// api/ names its parts unqualified.
#include "proto/errors.h"

namespace onlined::api {

using proto::AllErrors;
using proto::Code;
using proto::Error;
using proto::ErrorInfo;
using proto::FromCode;
using proto::HttpStatus;
using proto::Info;
using proto::StoreErrorOf;
using proto::WsEffect;

}  // namespace onlined::api
