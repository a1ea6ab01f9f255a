// This level's table of CPU kernels (compiled once per level, like every file here; see kernels.h). A
// constant initialiser of function addresses: the linker fills it, no code runs at load.

#include "kernels.h"

namespace audiosiam {
namespace cpu {
namespace AUDIOSIAM_CPU_CAPABILITY {

const Kernels kernels = {
    &pairwise_distance, &pairwise_distance_backward, &self_distance, &self_distance_backward,
    &knn,               &mel_power,                  &triplet_batch_all, &triplet_batch_hard,
    &triplet_batch_hard_backward, &triplet_semi_hard_negatives,
};

}  // namespace AUDIOSIAM_CPU_CAPABILITY
}  // namespace cpu
}  // namespace audiosiam
