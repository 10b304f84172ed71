package api

// PublishCost exposes publishCost to the tests of package api_test.
var PublishCost = publishCost
