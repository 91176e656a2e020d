namespace RinServe.Diffusion.Tests;

public class X0PreviewTests
{
    private sealed class Sink(Func<int, int, bool> wants) : IPreviewSink
    {
        public List<(int Step, int Image, GeneratedImage Preview)> Taken { get; } = [];

        public bool Wants(int step, int image) => wants(step, image);

        public void Take(int step, int image, GeneratedImage preview) => Taken.Add((step, image, preview));
    }

    [Fact]
    public void Preview_is_the_block_average_of_x0_mapped_to_pixels_like_the_image()
    {
        // 130 px: blocks of 3 (ceil(130 / 64)), 43 a side; the last row and column of 130 are left out.
        var spec = ToyDenoiser.MakeSpec(channels: 2, resolution: 130);
        var x0 = new float[spec.PixelsPerImage];
        for (var y = 0; y < 130; y++)
        {
            for (var x = 0; x < 130; x++)
            {
                var leftOver = y == 129 || x == 129;
                x0[y * 130 + x] = leftOver ? 9f : (y / 3 + x / 3) % 2 == 0 ? -0.5f : 0.5f;
                x0[130 * 130 + y * 130 + x] = leftOver ? 9f : 0f;
            }
        }
        var preview = X0Preview.Downsample(x0, spec);
        Assert.Equal((43, 43, 2), (preview.Width, preview.Height, preview.Channels));
        for (var r = 0; r < 43; r++)
        {
            for (var q = 0; q < 43; q++)
            {
                Assert.Equal((r + q) % 2 == 0 ? 0 : 255, preview.Pixels[(r * 43 + q) * 2]);
                Assert.Equal(128, preview.Pixels[(r * 43 + q) * 2 + 1]);
            }
        }
    }

    [Fact]
    public void Sink_gets_previews_of_only_the_images_and_steps_it_wants_and_the_images_do_not_change()
    {
        var settings = new SamplerSettings(4, "ddpm", "cosine", 1f);
        var sampler = new RinSampler(new ToyDenoiser(ToyDenoiser.MakeSpec(channels: 3)) { Record = false });
        ImageRequest[] requests = [new(0, 5), new(2, 6)];
        var plain = sampler.Generate(settings, requests);
        var sink = new Sink((step, image) => image == 1 && step % 2 == 0);
        var steps = new List<int>();
        var watched = sampler.Generate(settings, requests, p => steps.Add(p.Step), sink, default);

        Assert.Equal([(2, 1), (4, 1)], sink.Taken.Select(t => (t.Step, t.Image)));
        Assert.Equal([1, 2, 3, 4], steps);
        for (var b = 0; b < requests.Length; b++)
        {
            Assert.Equal(plain[b].Pixels, watched[b].Pixels);
        }
        // At 4 px there is nothing to average: the last step's preview is the image itself.
        Assert.Equal(watched[1].Pixels, sink.Taken[^1].Preview.Pixels);
    }
}
