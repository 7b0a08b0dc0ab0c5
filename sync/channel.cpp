#include "sync/channel.h"

#include "sync/detail/misuse.h"

namespace spindle::detail {

void channel_base::report_waited_on() const noexcept {
  lock_.lock();
  const std::size_t receivers = receivers_.size();
  const std::size_t senders = senders_.size();
  lock_.unlock();
  destroyed_while_waited_on("channel", this, {receivers, "receivers"}, {senders, "senders"},
                            "close() it and let them leave first");
}

}  // namespace spindle::detail
