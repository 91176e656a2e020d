using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace RinServe.Playground.Tests;

/// <summary>Swagger UI in a real browser, on a service with API keys on: "Try it out" needs the Authorize button.</summary>
[Collection(BrowserCollection.Name)]
public sealed class SwaggerUiTests(PlaygroundFixture fixture) : IClassFixture<PlaygroundFixture>
{
    [Fact]
    public async Task Try_it_out_is_refused_without_a_key_and_answers_once_the_key_is_given_with_Authorize()
    {
        var page = await fixture.Browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        await page.GotoAsync(fixture.Service.Url + "/swagger/index.html");
        var models = page.Locator("#operations-Models-ListModels"); // tag and operationId
        await models.Locator(".opblock-summary").ClickAsync();
        await models.GetByRole(AriaRole.Button, new() { Name = "Try it out" }).ClickAsync();
        var execute = models.GetByRole(AriaRole.Button, new() { Name = "Execute" });
        var status = models.Locator(".live-responses-table tbody .response-col_status");

        await execute.ClickAsync();
        await Expect(status).ToContainTextAsync("401");

        await page.Locator(".auth-wrapper .authorize").ClickAsync();
        var dialog = page.Locator(".modal-ux");
        await Expect(dialog).ToContainTextAsync("X-Api-Key");
        await dialog.Locator("input").FillAsync(BrowserFixture.ApiKey);
        await dialog.Locator(".auth-btn-wrapper .authorize").ClickAsync();
        await dialog.Locator(".btn-done").ClickAsync();

        await execute.ClickAsync();
        await Expect(status).ToContainTextAsync("200");
        await Expect(models.Locator(".live-responses-table")).ToContainTextAsync("fmnist-64");
    }
}
