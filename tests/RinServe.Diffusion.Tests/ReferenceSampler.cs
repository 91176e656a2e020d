using RinServe.Diffusion;

namespace RinServe.Diffusion.Tests;

/// <summary>
/// Algorithm 3 of MODEL-CONTRACT.md written the plain way: one example at a time, scalar loops,
/// double accumulators. The production sampler must agree with it.
/// </summary>
internal static class ReferenceSampler
{
    public static float[] FinalX0(IDenoiser net, SamplerSettings settings, ImageRequest request, INoiseSource noise)
    {
        var spec = net.Spec;
        var n = spec.PixelsPerImage;
        var schedule = Schedules.Parse(settings.Schedule);
        var x = new float[n];
        noise.Fill(request.Seed, INoiseSource.InitialStep, x);
        var guided = settings.Guidance > 0;
        var latents = new float[(guided ? 2 : 1) * spec.LatentsPerImage];
        var x0 = new float[n];
        var previousX0 = new float[n];
        var b = spec.InputScale;
        for (var i = 0; i < settings.Steps; i++)
        {
            var t = 1.0 - (double)i / settings.Steps;
            var tNext = Math.Max(1.0 - (double)(i + 1) / settings.Steps, 0);
            var g = schedule.Gamma(t);
            var gNext = schedule.Gamma(tNext);

            double mean = 0, squares = 0;
            foreach (var v in x)
            {
                mean += v;
            }

            mean /= n;
            foreach (var v in x)
            {
                squares += (v - mean) * (v - mean);
            }

            var std = Math.Max(Math.Sqrt(squares / n), 1e-6);
            var input = x.Select(v => spec.NormalizeInput ? (float)(v / std) : v).ToArray();
            float[] pred;
            var outLatents = new float[latents.Length];
            if (guided)
            {
                var both = new float[2 * n];
                net.Denoise(
                    2, input.Concat(input).ToArray(), [(float)g, (float)g], [request.ClassId, spec.NullClass!.Value], latents, both, outLatents);
                // Guided only where the interval holds t (the row's own, else the model's); unguided steps take the class half alone.
                var interval = settings.GuidanceInterval ?? spec.GuidanceInterval;
                var w = t >= interval.Low && t <= interval.High ? settings.Guidance : 0f;
                pred = Enumerable.Range(0, n).Select(k => (float)(1.0 + w) * both[k] - w * both[n + k]).ToArray();
            }
            else
            {
                pred = new float[n];
                net.Denoise(1, input, [(float)g], [request.ClassId], latents, pred, outLatents);
            }

            latents = outLatents;
            // Scalars in float64 cast to float32; array math in float32 (the contract's precision rule).
            float sqrtG = (float)Math.Sqrt(g), sqrt1G = (float)Math.Sqrt(1 - g);
            float sqrtGNext = (float)Math.Sqrt(gNext), sqrt1GNext = (float)Math.Sqrt(1 - gNext);
            var eps = new float[n];
            for (var k = 0; k < n; k++)
            {
                var value = spec.Prediction switch
                {
                    Prediction.Eps => (x[k] - sqrt1G * pred[k]) / sqrtG,
                    Prediction.X => pred[k],
                    _ => sqrtG * x[k] - sqrt1G * pred[k],
                };
                x0[k] = Math.Clamp(value, -b, b);
                eps[k] = (x[k] - sqrtG * x0[k]) / sqrt1G;
            }

            if (settings.Sampler == "dpmpp-2m")
            {
                // DPM-Solver++(2M) (Lu et al. 2022) in VP form: D = (1 + 1/2r)·x̂0 − (1/2r)·x̂0_prev, r = h_prev/h in λ = ½ log(γ/(1−γ));
                // first order (D = x̂0) at the first and the last step; then a DDIM step from D.
                double Lambda(double gamma)
                {
                    var c = Math.Clamp(gamma, 1e-9, 1 - 1e-9);
                    return 0.5 * Math.Log(c / (1 - c));
                }

                float current = 1, previous = 0;
                if (i > 0 && i < settings.Steps - 1)
                {
                    var gPrev = schedule.Gamma(1.0 - (double)(i - 1) / settings.Steps);
                    var r = (Lambda(g) - Lambda(gPrev)) / (Lambda(gNext) - Lambda(g));
                    (current, previous) = ((float)(1 + 1 / (2 * r)), (float)(1 / (2 * r)));
                }

                for (var k = 0; k < n; k++)
                {
                    var d = current * x0[k] - previous * previousX0[k];
                    var e = (x[k] - sqrtG * d) / sqrt1G;
                    x[k] = sqrtGNext * d + sqrt1GNext * e;
                }

                Array.Copy(x0, previousX0, n);
            }
            else if (settings.Sampler == "ddim")
            {
                for (var k = 0; k < n; k++)
                {
                    x[k] = sqrtGNext * x0[k] + sqrt1GNext * eps[k];
                }
            }
            else
            {
                var z = new float[n];
                noise.Fill(request.Seed, i, z);
                var alpha = Math.Clamp(g / gNext, 0, 1);
                var variance = settings.Sampler == "ddpm" ? 1 - alpha : (1 - gNext) / (1 - g) * (1 - alpha);
                float epsCoefficient = (float)((1 - alpha) / Math.Sqrt(1 - g)), sqrtAlpha = (float)Math.Sqrt(alpha);
                var sigma = (float)Math.Sqrt(variance);
                for (var k = 0; k < n; k++)
                {
                    var mu = (x[k] - epsCoefficient * eps[k]) / sqrtAlpha;
                    x[k] = mu + sigma * z[k];
                }
            }
        }

        return x0;
    }
}
