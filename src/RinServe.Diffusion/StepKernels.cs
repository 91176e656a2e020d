using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RinServe.Diffusion;

/// <summary>
/// Σx and Σx² of an image, as the sampler's steps compute them (<see cref="RowKernel"/>): a fixed 8 lanes (Vector256,
/// emulated where the hardware is narrower) flushed to float64 every block, so every machine adds in the same order.
/// </summary>
internal static class StepKernels
{
    private const int StatisticsBlock = RowKernel.StatisticsBlock;

    /// <summary>Σx and Σx² of one example, float32 lanes flushed to float64 every block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the slow tier-0 code of the first calls
    public static (double Sum, double SumOfSquares) Statistics(ReadOnlySpan<float> x)
    {
        double sum = 0, squares = 0;
        for (var start = 0; start < x.Length; start += StatisticsBlock)
        {
            var block = x.Slice(start, Math.Min(StatisticsBlock, x.Length - start));
            var vs = Vector256<float>.Zero;
            var vq = Vector256<float>.Zero;
            var i = 0;
            for (; i <= block.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.Create(block[i..]);
                vs += v;
                vq += v * v;
            }

            double blockSum = 0, blockSquares = 0;
            for (var lane = 0; lane < Vector256<float>.Count; lane++)
            {
                blockSum += vs[lane];
                blockSquares += vq[lane];
            }

            for (; i < block.Length; i++)
            {
                blockSum += block[i];
                blockSquares += (double)block[i] * block[i];
            }

            sum += blockSum;
            squares += blockSquares;
        }

        return (sum, squares);
    }
}
