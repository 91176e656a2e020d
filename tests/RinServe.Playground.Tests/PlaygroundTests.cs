using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace RinServe.Playground.Tests;

/// <summary>The service with the shipped 64 px model, and Debian's headless Chromium driven by Playwright.</summary>
public sealed class PlaygroundFixture() : BrowserFixture(["fmnist-64.onnx"]);

/// <summary>Two families at one resolution: fmnist-768 and glyph-768 (284 classes, the default family).</summary>
public sealed class SharedResolutionFixture() : BrowserFixture(["fmnist-768.onnx", "glyph-768.onnx"]);

/// <summary>The service with some of the shipped models, and Debian's headless Chromium driven by Playwright.</summary>
public abstract class BrowserFixture(IReadOnlyList<string> models) : IAsyncLifetime
{
    /// <summary>Debian's package (test.sh installs it); never a browser Playwright downloads.</summary>
    public const string Chromium = "/usr/bin/chromium";

    /// <summary>The service runs with API keys on, so every test also goes through the page's key form.</summary>
    public const string ApiKey = "playground-test-key";

    public PlaygroundService Service { get; private set; } = null!;
    public IPlaywright Playwright { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (!File.Exists(Chromium))
        {
            throw new InvalidOperationException($"{Chromium} is missing: install Debian's chromium package (./test.sh does)");
        }
        Service = await PlaygroundService.StartAsync(models, new Dictionary<string, string>
        {
            ["Auth__ApiKeys__0"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(ApiKey))),
            ["Onnx__IntraOpThreads"] = "1",
            // Previews start at the worker's next heartbeat: a short one keeps them coming on a fast machine too.
            ["Workers__HeartbeatInterval"] = "00:00:00.100",
            ["Logging__LogLevel__Default"] = "Warning",
        });
        Playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        // Playwright gives each launch a fresh temporary profile (--user-data-dir) and, by default, --no-sandbox.
        Browser = await Playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            ChromiumSandbox = false,
            Args = ["--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }
        Playwright?.Dispose();
        if (Service is not null)
        {
            await Service.DisposeAsync();
        }
    }
}

/// <summary>Opens the page and goes through its API key form.</summary>
internal static class PlaygroundPage
{
    public static async Task<IPage> OpenAsync(BrowserFixture fixture, int width, int height, List<string> errors)
    {
        var page = await fixture.Browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = width, Height = height } });
        page.Console += (_, message) => { if (message.Type == "error") { errors.Add(message.Text); } };
        page.PageError += (_, error) => errors.Add(error);
        await page.GotoAsync(fixture.Service.Url + "/");
        // GET /models answers 401 without a key: the page asks for one, then sends it with every call.
        await Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("API key required");
        await page.GetByLabel("API key").FillAsync(PlaygroundFixture.ApiKey);
        await page.GetByRole(AriaRole.Button, new() { Name = "Use key" }).ClickAsync();
        await Expect(page.GetByLabel("Class")).ToBeEnabledAsync();
        await Expect(page.GetByRole(AriaRole.Alert)).ToBeHiddenAsync();
        await Expect(page.Locator("#key-form")).ToBeHiddenAsync();
        errors.Clear(); // the 401 of the first GET /models
        return page;
    }

    public static Task<int[]> NaturalSizeAsync(IPage page, string id) =>
        page.EvaluateAsync<int[]>($"async () => {{ const i = document.getElementById('{id}'); await i.decode(); return [i.naturalWidth, i.naturalHeight]; }}");
}

/// <summary>One browser test at a time: they share two cores with the service they drive.</summary>
[CollectionDefinition(Name)]
public sealed class BrowserCollection
{
    public const string Name = "browser";
}

[Collection(BrowserCollection.Name)]
public sealed class PlaygroundTests(PlaygroundFixture fixture) : IClassFixture<PlaygroundFixture>
{
    private static readonly string Screenshot = Path.Combine(PlaygroundService.RepoRoot, "docs", "playground.png");

    [Fact]
    public async Task Generating_shows_progress_and_previews_then_the_image_at_full_size()
    {
        var errors = new List<string>();
        var page = await PlaygroundPage.OpenAsync(fixture, 960, 720, errors);
        await Expect(page.GetByLabel("Class")).ToHaveValueAsync("T-shirt/top");
        await Expect(page.Locator("#class-options option")).ToHaveCountAsync(10);
        await page.GetByLabel("Class").FillAsync("Sneaker");
        await page.GetByLabel("Steps").FillAsync("100");
        await page.GetByLabel("Seed").FillAsync("3");
        await page.GetByRole(AriaRole.Button, new() { Name = "Generate" }).ClickAsync();

        var result = page.Locator("#result-image");
        await Expect(result).ToBeVisibleAsync(new() { Timeout = 300_000 });
        await Expect(page.Locator("#status")).ToContainTextAsync("Done");
        var run = page.Locator("#run");
        var progressEvents = int.Parse((await run.GetAttributeAsync("data-progress-events"))!);
        var previews = int.Parse((await run.GetAttributeAsync("data-previews"))!);
        Assert.True(progressEvents >= 1, $"{progressEvents} progress events\n{fixture.Service.Output}");
        Assert.True(previews >= 1, $"{previews} previews after {progressEvents} progress events\n{fixture.Service.Output}");

        var previewSize = await PlaygroundPage.NaturalSizeAsync(page, "preview");
        Assert.InRange(previewSize[0], 1, 64);
        Assert.InRange(previewSize[1], 1, 64);
        var size = await PlaygroundPage.NaturalSizeAsync(page, "result-image");
        Assert.Equal([64, 64], size);
        await Expect(page.Locator("#result-caption")).ToContainTextAsync("Sneaker · seed 3");
        Assert.StartsWith("blob:", await page.GetByRole(AriaRole.Link, new() { Name = "Download" }).GetAttributeAsync("href"));
        await Expect(page.Locator("#gallery li")).ToHaveCountAsync(1);

        Directory.CreateDirectory(Path.GetDirectoryName(Screenshot)!);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Screenshot, FullPage = true });

        await page.GetByLabel("Seed").FillAsync("");
        await page.GetByRole(AriaRole.Button, new() { Name = "Reuse seed" }).ClickAsync();
        await Expect(page.GetByLabel("Seed")).ToHaveValueAsync("3");
        Assert.Empty(errors);
    }

    [Fact]
    public async Task An_invalid_request_shows_the_services_message_in_words_at_phone_width()
    {
        var errors = new List<string>();
        var page = await PlaygroundPage.OpenAsync(fixture, 375, 740, errors);
        await page.GetByLabel("Steps").FillAsync("0");
        await page.GetByLabel("Steps").PressAsync("Enter");

        var alert = page.GetByRole(AriaRole.Alert);
        await Expect(alert).ToContainTextAsync("Invalid parameter 'steps'");
        await Expect(alert).ToContainTextAsync("steps must be an integer from 1 to");
        await Expect(alert).Not.ToContainTextAsync("{");
        await Expect(page.GetByLabel("Steps")).ToHaveAttributeAsync("aria-invalid", "true");
        await Expect(page.GetByLabel("Steps")).ToBeFocusedAsync();
        Assert.True(await page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways at phone width");
        // For a person to look at; next to the test build, not in the repo.
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(AppContext.BaseDirectory, "playground-phone.png"), FullPage = true });
        // The 400 is the only error the console may show.
        Assert.All(errors, e => Assert.Contains("400", e));
    }
}

[Collection(BrowserCollection.Name)]
public sealed class SharedResolutionPlaygroundTests(SharedResolutionFixture fixture) : IClassFixture<SharedResolutionFixture>
{
    [Fact]
    public async Task Default_family_comes_first_and_a_typed_character_is_that_class()
    {
        var errors = new List<string>();
        var page = await PlaygroundPage.OpenAsync(fixture, 960, 720, errors);
        var model = page.GetByLabel("Model");
        await Expect(model).ToHaveValueAsync("glyph-768");
        await Expect(page.Locator("#model optgroup").First).ToHaveAttributeAsync("label", "glyph");
        await Expect(page.Locator("#model option[value='glyph-768']")).ToHaveTextAsync("glyph-768 (768 px, default)");
        await Expect(page.Locator("#model option[value='fmnist-768']")).ToHaveTextAsync("fmnist-768 (768 px)");
        await Expect(page.Locator("#class-options option")).ToHaveCountAsync(284);
        await Expect(page.Locator("#class-hint")).ToContainTextAsync("type a character (case matters)");

        // steps=5: a glyph-768 step costs a few hundred ms on a CPU; the class, not the image, is what this checks.
        await page.GetByLabel("Class").FillAsync("ĳ");
        await page.GetByLabel("Steps").FillAsync("5");
        await page.GetByLabel("Seed").FillAsync("1");
        await page.GetByRole(AriaRole.Button, new() { Name = "Generate" }).ClickAsync();
        await Expect(page.Locator("#result-caption")).ToContainTextAsync("ĳ (U+0133) · seed 1 · glyph-768", new() { Timeout = 120_000 });
        var size = await PlaygroundPage.NaturalSizeAsync(page, "result-image");
        Assert.Equal([768, 768], size);
        // For a person to look at; next to the test build, not in the repo.
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(AppContext.BaseDirectory, "playground-glyph.png"), FullPage = true });

        // The other family at the same resolution: its own classes, read by name as before.
        await model.SelectOptionAsync("fmnist-768");
        await Expect(page.Locator("#class-options option")).ToHaveCountAsync(10);
        await Expect(page.GetByLabel("Class")).ToHaveValueAsync("T-shirt/top");
        await page.GetByLabel("Class").FillAsync("sneaker");
        await page.GetByLabel("Steps").FillAsync("2");
        await page.GetByRole(AriaRole.Button, new() { Name = "Generate" }).ClickAsync();
        await Expect(page.Locator("#result-caption")).ToContainTextAsync("Sneaker · seed 1 · fmnist-768", new() { Timeout = 120_000 });
        Assert.Empty(errors);
    }
}
